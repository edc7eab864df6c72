// node_peer.js — a Node.js NDJSON ping-pong over a Unix socket with the messages
// cmdipc puts on the wire for math.add: the client JSON.stringify()s an
// execute.command.request with a fresh crypto.randomUUID() id, the server
// JSON.parse()s it and answers with an execute.command.response (fresh id, thid,
// {"ok":true,"result":3}), which the client parses. Plain `net`, one write per
// read callback on both sides. The server is a child process.
//
//   node/unix/ndjson/1    one request outstanding
//   node/unix/ndjson/64   64 requests outstanding
//
// Run by test/bench/peers.sh (not part of make bench).
// Usage: node node_peer.js [seconds per figure]
'use strict';

const net = require('net');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { fork } = require('child_process');
const { randomUUID } = require('crypto');

function cpuUs() {
  const u = process.cpuUsage();
  return u.user + u.system;
}

// Splits a stream into lines, calling onLine for each; returns the data handler.
function lineReader(onLine) {
  let rest = '';
  return (chunk) => {
    const text = rest + chunk.toString('utf8');
    let start = 0;
    let nl;
    while ((nl = text.indexOf('\n', start)) !== -1) {
      onLine(text.slice(start, nl));
      start = nl + 1;
    }
    rest = text.slice(start);
  };
}

function server(sockPath) {
  let cpu0 = 0;
  const srv = net.createServer((sock) => {
    let out = [];
    const onData = lineReader((line) => {
      const req = JSON.parse(line);
      const a = req.request.a;
      const b = req.request.b;
      out.push(JSON.stringify({
        id: randomUUID(),
        type: 'execute.command.response',
        thid: req.id,
        response: { ok: true, result: a + b },
      }));
    });
    sock.on('data', (chunk) => {
      onData(chunk);
      if (out.length) {
        sock.write(out.join('\n') + '\n');
        out = [];
      }
    });
    sock.on('error', () => {});
  });
  srv.listen(sockPath, () => process.send({ ready: true }));
  process.on('message', (m) => {
    if (m.mark) cpu0 = cpuUs();
    if (m.stop) {
      process.send({ cpu: cpuUs() - cpu0 }, () => process.exit(0));
    }
  });
}

function pct(sorted, p) {
  if (!sorted.length) return 0;
  return sorted[Math.min(sorted.length - 1, Math.round((p / 100) * (sorted.length - 1)))];
}

function runOne(seconds, k) {
  return new Promise((resolve, reject) => {
    const sockPath = path.join(os.tmpdir(), `cmdipc-node-${process.pid}-${k}.sock`);
    try { fs.unlinkSync(sockPath); } catch (e) { /* absent */ }
    const child = fork(__filename, ['server', sockPath], { stdio: 'inherit' });
    child.on('error', reject);
    child.once('message', () => {
      const sock = net.connect(sockPath);
      const sentAt = [];
      const lat = [];
      let measuring = false;
      let stopping = false;
      let measured = 0;
      let t0 = 0n;
      let cpu0 = 0;
      let t1 = 0n;
      let cpu1 = 0;
      let out = [];
      const request = () => {
        sentAt.push(process.hrtime.bigint());
        out.push(JSON.stringify({
          id: randomUUID(),
          type: 'execute.command.request',
          commandId: 'math.add',
          request: { a: 1, b: 2 },
        }));
      };
      const flush = () => {
        if (out.length) {
          sock.write(out.join('\n') + '\n');
          out = [];
        }
      };
      const onData = lineReader((line) => {
        const res = JSON.parse(line);
        if (res.response.result !== 3) throw new Error('wrong result');
        const at = sentAt.shift();
        if (measuring) {
          measured++;
          if (lat.length < 200000) lat.push(Number(process.hrtime.bigint() - at) / 1000);
        }
        if (!stopping) request();
      });
      sock.on('data', (chunk) => {
        onData(chunk);
        flush();
      });
      sock.on('error', reject);
      sock.on('connect', () => {
        for (let i = 0; i < k; i++) request();
        flush();
        setTimeout(() => {
          measuring = true;
          t0 = process.hrtime.bigint();
          cpu0 = cpuUs();
          child.send({ mark: true });
          setTimeout(() => {
            measuring = false;
            stopping = true;
            t1 = process.hrtime.bigint();
            cpu1 = cpuUs();
            child.send({ stop: true });
            child.once('message', (m) => {
              sock.destroy();
              child.on('exit', () => {
                try { fs.unlinkSync(sockPath); } catch (e) { /* gone */ }
                const secs = Number(t1 - t0) / 1e9;
                lat.sort((x, y) => x - y);
                resolve({
                  name: `node/unix/ndjson/${k}`,
                  rate: measured / secs,
                  p50: pct(lat, 50),
                  p99: pct(lat, 99),
                  cpu: measured ? (cpu1 - cpu0 + m.cpu) / measured : 0,
                });
              });
            });
          }, seconds * 1000);
        }, 200);
      });
    });
  });
}

function pad(s, n) { return s.length >= n ? s : s + ' '.repeat(n - s.length); }
function lpad(s, n) { return s.length >= n ? s : ' '.repeat(n - s.length) + s; }

async function main() {
  const seconds = Number(process.argv[2]) > 0 ? Number(process.argv[2]) : 2;
  for (const k of [1, 64]) {
    const r = await runOne(seconds, k);
    // The one-line format of test/bench/bench.c.
    console.log(`${pad(r.name, 34)} ${lpad(r.rate.toFixed(0), 10)} rt/s  p50 ` +
                `${lpad(r.p50.toFixed(1), 7)} us  p99 ${lpad(r.p99.toFixed(1), 7)} us  ` +
                `cpu ${lpad(r.cpu.toFixed(2), 6)} us/op  (baseline)`);
  }
}

if (process.argv[2] === 'server') {
  server(process.argv[3]);
} else {
  main().catch((e) => {
    console.error(`node_peer: ${e.stack || e}`);
    process.exit(1);
  });
}
