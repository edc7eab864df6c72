// An independent implementation of Noise_XK_25519_ChaChaPoly_SHA256 with
// Node.js's built-in crypto only, for test-noise (noise_xk_matches_node).
//
// Reads one JSON object per line on stdin:
//   {"prologue", "init_static", "init_ephemeral", "resp_static",
//    "resp_ephemeral", "payloads": [p0, p1, p2]}   (hex strings)
// and writes one line per input: {"messages": [m0, m1, m2], "i2r", "r2i", "h"}.
// Both sides are computed (the responder reads what the initiator wrote and
// the other way round), so a mistake on either side shows.
'use strict';
const crypto = require('crypto');
const readline = require('readline');

const NAME = Buffer.from('Noise_XK_25519_ChaChaPoly_SHA256', 'ascii');
const PKCS8_X25519 = Buffer.from('302e020100300506032b656e04220420', 'hex');

function privKey(raw) {
  return crypto.createPrivateKey({ key: Buffer.concat([PKCS8_X25519, raw]), format: 'der', type: 'pkcs8' });
}
function pubOf(raw) {
  const jwk = crypto.createPublicKey(privKey(raw)).export({ format: 'jwk' });
  return Buffer.from(jwk.x, 'base64url');
}
function pubKey(raw) {
  return crypto.createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: raw.toString('base64url') }, format: 'jwk' });
}
function dh(sk, pk) {
  return crypto.diffieHellman({ privateKey: privKey(sk), publicKey: pubKey(pk) });
}
const sha256 = (...parts) => crypto.createHash('sha256').update(Buffer.concat(parts)).digest();
const hmac = (key, ...parts) => crypto.createHmac('sha256', key).update(Buffer.concat(parts)).digest();
function hkdf(ck, ikm) {
  const t = hmac(ck, ikm);
  const o1 = hmac(t, Buffer.from([1]));
  const o2 = hmac(t, o1, Buffer.from([2]));
  return [o1, o2];
}
function nonce(n) {
  const b = Buffer.alloc(12);
  b.writeBigUInt64LE(BigInt(n), 4);
  return b;
}
function seal(k, n, ad, p) {
  const c = crypto.createCipheriv('chacha20-poly1305', k, nonce(n), { authTagLength: 16 });
  c.setAAD(ad);
  return Buffer.concat([c.update(p), c.final(), c.getAuthTag()]);
}
function open(k, n, ad, m) {
  const d = crypto.createDecipheriv('chacha20-poly1305', k, nonce(n), { authTagLength: 16 });
  d.setAAD(ad);
  d.setAuthTag(m.subarray(m.length - 16));
  return Buffer.concat([d.update(m.subarray(0, m.length - 16)), d.final()]);
}

class State {
  constructor(prologue, rsPub) {
    this.h = NAME;
    this.ck = NAME;
    this.k = null;
    this.n = 0;
    this.mixHash(prologue);
    this.mixHash(rsPub);
  }
  mixHash(x) { this.h = sha256(this.h, x); }
  mixKey(x) { [this.ck, this.k] = hkdf(this.ck, x); this.n = 0; }
  encrypt(p) { const c = seal(this.k, this.n++, this.h, p); this.mixHash(c); return c; }
  decrypt(c) { const p = open(this.k, this.n++, this.h, c); this.mixHash(c); return p; }
}

function run(v) {
  const hex = (s) => Buffer.from(s, 'hex');
  const prologue = hex(v.prologue);
  const is = hex(v.init_static), ie = hex(v.init_ephemeral);
  const rs = hex(v.resp_static), re = hex(v.resp_ephemeral);
  const p = v.payloads.map(hex);
  const isPub = pubOf(is), iePub = pubOf(ie), rsPub = pubOf(rs), rePub = pubOf(re);
  const I = new State(prologue, rsPub), R = new State(prologue, rsPub);
  const msgs = [];
  // -> e, es
  I.mixHash(iePub); I.mixKey(dh(ie, rsPub));
  let m = Buffer.concat([iePub, I.encrypt(p[0])]);
  msgs.push(m);
  R.mixHash(m.subarray(0, 32)); R.mixKey(dh(rs, m.subarray(0, 32)));
  if (!R.decrypt(m.subarray(32)).equals(p[0])) throw new Error('payload 0');
  // <- e, ee
  R.mixHash(rePub); R.mixKey(dh(re, iePub));
  m = Buffer.concat([rePub, R.encrypt(p[1])]);
  msgs.push(m);
  I.mixHash(m.subarray(0, 32)); I.mixKey(dh(ie, m.subarray(0, 32)));
  if (!I.decrypt(m.subarray(32)).equals(p[1])) throw new Error('payload 1');
  // -> s, se
  const c = I.encrypt(isPub);
  I.mixKey(dh(is, rePub));
  m = Buffer.concat([c, I.encrypt(p[2])]);
  msgs.push(m);
  const learned = R.decrypt(m.subarray(0, 48));
  if (!learned.equals(isPub)) throw new Error('static key');
  R.mixKey(dh(re, learned));
  if (!R.decrypt(m.subarray(48)).equals(p[2])) throw new Error('payload 2');
  const [i2r, r2i] = hkdf(I.ck, Buffer.alloc(0));
  const [ri2r, rr2i] = hkdf(R.ck, Buffer.alloc(0));
  if (!i2r.equals(ri2r) || !r2i.equals(rr2i) || !I.h.equals(R.h)) throw new Error('split');
  return { messages: msgs.map((b) => b.toString('hex')), i2r: i2r.toString('hex'), r2i: r2i.toString('hex'), h: I.h.toString('hex') };
}

const rl = readline.createInterface({ input: process.stdin });
rl.on('line', (line) => {
  if (line.trim() === '') return;
  process.stdout.write(JSON.stringify(run(JSON.parse(line))) + '\n');
});
