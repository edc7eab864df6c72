#!/usr/bin/env python3
"""Writes the man pages of the cmdipc tool from its --help texts.

usage: gen-man.py CMDIPC OUTDIR SUBCOMMAND...

Writes OUTDIR/cmdipc.1 (from `cmdipc --help`) and OUTDIR/cmdipc-SUB.1 for each
SUBCOMMAND (from `cmdipc SUB --help`), so that the pages say exactly what the
tool says. The help texts share one layout, which this reads:

  Usage: cmdipc SUB [OPTIONS] ARGS            -> SYNOPSIS (and "       cmdipc ..." lines)
  paragraphs                                  -> DESCRIPTION (indented lines kept as they are)
  Options: / Commands: / Addresses: / ...     -> a section of "  -x, --name ARG   text" entries
  Exit status: ... (a table, or one sentence) -> EXIT STATUS
  Examples:                                   -> EXAMPLES

The list of sub-commands must be the one `cmdipc --help` gives (a sub-command
without a page, or a page for none, fails the build).
"""
import re
import subprocess
import sys

ENVIRONMENT = [
    ("CMDIPC_ADDR", "The address used when a command is given no ADDR (a URL or a "
     "socket path, as for ADDR)."),
]


def run_help(exe, *args):
    r = subprocess.run([exe, *args, "--help"], capture_output=True, text=True, check=True)
    return r.stdout


def version(exe):
    out = subprocess.run([exe, "--version"], capture_output=True, text=True,
                         check=True).stdout.split()
    return out[1] if len(out) > 1 else "?"


def esc(text):
    """Roff-escapes a line of text: backslashes, hyphens (so that options and
    examples copy as typed), and a leading dot or quote."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    if text.startswith((".", "'")):
        text = "\\&" + text
    return text


def split_sections(text):
    """[(title, [lines])]: the usage block first (title "Usage"), then the
    description (title ""), then one per "Title:" line."""
    lines = text.rstrip("\n").split("\n")
    sections = [("Usage", [])]
    i = 0
    while i < len(lines) and (lines[i].startswith("Usage:") or lines[i].startswith("       ")):
        sections[0][1].append(lines[i][len("Usage:"):].strip() if lines[i].startswith("Usage:")
                              else lines[i].strip())
        i += 1
    sections.append(("", []))
    for line in lines[i:]:
        m = re.match(r"^([A-Z][A-Za-z ()]*):(.*)$", line)
        if m and not line.startswith(" ") and (m.group(2) == "" or m.group(1) == "Exit status"):
            sections.append((m.group(1), []))
            if m.group(2).strip():
                sections[-1][1].append(m.group(2).strip())
            continue
        sections[-1][1].append(line)
    return sections


def paragraphs(lines):
    """Roff for prose: blank lines separate paragraphs; indented lines are
    shown as they are (examples of output)."""
    out, in_pre = [], False
    for line in lines:
        if not line.strip():
            if in_pre:
                out += [".fi", ".RE"]
                in_pre = False
            out.append(".PP")
            continue
        if line.startswith("  "):
            if not in_pre:
                out += [".RS 4", ".nf"]
                in_pre = True
            out.append(esc(line[2:]))
            continue
        if in_pre:
            out += [".fi", ".RE"]
            in_pre = False
        out.append(esc(line))
    if in_pre:
        out += [".fi", ".RE"]
    while out and out[-1] == ".PP":
        out.pop()
    while out and out[0] == ".PP":
        out.pop(0)
    return out


def entries(lines):
    """Roff for "  term   text" lists (options, commands, the exit table):
    .TP items; continuation lines (deeper indent) join the text; other lines
    are prose after the list."""
    out, item, rest = [], None, []
    for line in lines:
        m = re.match(r"^ {1,4}(\S.*?)(?: {2,}(\S.*))?$", line)
        if line.startswith("      ") and item is not None:  # continuation
            item[1].append(line.strip())
        elif m and line.startswith("  ") and not rest:
            item = (m.group(1), [m.group(2)] if m.group(2) else [])
            out.append(item)
        elif line.strip() or rest:
            rest.append(line)
    roff = []
    for term, text in out:
        roff += [".TP", "\\fB" + esc(term) + "\\fR", esc(" ".join(text))]
    if rest:
        roff += [".PP"] + paragraphs(rest)
    return roff


def exit_status(lines):
    table = [l for l in lines if re.match(r"^ *\d+ ", l)]
    if len(table) >= 3:  # the table of CLI_EXIT_TABLE
        roff = []
        for line in lines:
            m = re.match(r"^ *(\d+)  (.*)$", line)
            if m:
                text = re.sub(r" {2,}", ": ", m.group(2).strip(), count=1)
                roff += [".TP", "\\fB" + m.group(1) + "\\fR", esc(text)]
            elif line.strip() and roff:
                roff[-1] += " " + esc(line.strip())
        return roff
    return paragraphs(lines)


def examples(lines):
    roff = [".nf", ".RS 4"]
    roff += [esc(l[2:] if l.startswith("  ") else l) for l in lines if l.strip()]
    return roff + [".RE", ".fi"]


def page(name, title, summary, sections, ver, see_also):
    roff = [
        '.\\" Generated by tools/gen-man.py from "%s --help"; do not edit.' % name.replace("-", " "),
        '.TH %s 1 "" "cmdipc %s" "User Commands"' % (title.upper().replace("-", "\\-"), ver),
        ".SH NAME",
        "%s \\- %s" % (esc(title), esc(summary)),
        ".SH SYNOPSIS",
    ]
    for usage in sections[0][1]:
        words = usage.split(" ", 2)
        cmd = " ".join(words[:2]) if words[1:2] and words[1].islower() and name != "cmdipc" \
            else words[0]
        args = usage[len(cmd):].strip()
        roff += [".PP" if roff[-1] != ".SH SYNOPSIS" else ".PD 0", "\\fB%s\\fR %s" % (esc(cmd), esc(args))]
    roff.append(".PD")
    named = {"Options": "OPTIONS", "Exit status": "EXIT STATUS", "Examples": "EXAMPLES"}
    for sec_title, lines in sections[1:]:
        if sec_title == "":
            roff += [".SH DESCRIPTION"] + paragraphs(lines)
        elif sec_title == "Exit status":
            roff += [".SH EXIT STATUS"] + exit_status(lines)
        elif sec_title == "Examples":
            roff += [".SH EXAMPLES"] + examples(lines)
        elif sec_title == "Environment":
            continue  # below, with the variables every command reads
        elif sec_title.startswith("Options"):
            roff += [".SH OPTIONS"] + entries(lines)
        elif sec_title in named or any(re.match(r"^  \S", l) for l in lines):
            roff += [".SH " + esc(named.get(sec_title, sec_title.upper()))] + entries(lines)
        else:
            roff += [".SS " + esc(sec_title)] + paragraphs(lines)
    roff.append(".SH ENVIRONMENT")
    for var, text in ENVIRONMENT:
        roff += [".TP", "\\fB%s\\fR" % var, esc(text)]
    roff += [".SH SEE ALSO", ", ".join("\\fB%s\\fR(1)" % esc(s) for s in see_also)]
    return "\n".join(roff) + "\n"


def command_summaries(main_help):
    """{name: one-line summary} from the Commands: section of cmdipc --help."""
    out = {}
    for _, lines in split_sections(main_help):
        for line in lines:
            m = re.match(r"^  ([a-z]+)( [^ ].*?)?  +(\S.*)$", line)
            if m and _ == "Commands":
                out[m.group(1)] = m.group(3)
    return out


def main():
    exe, outdir, subs = sys.argv[1], sys.argv[2], sys.argv[3:]
    ver = version(exe)
    main_help = run_help(exe)
    summaries = command_summaries(main_help)
    listed = sorted(k for k in summaries if k != "help")
    if sorted(subs) != listed:
        sys.exit("gen-man.py: the sub-commands given (%s) are not those of cmdipc --help "
                 "(%s): update cmdipc_subcommands in tools/meson.build"
                 % (" ".join(sorted(subs)), " ".join(listed)))
    pages = ["cmdipc"] + ["cmdipc-" + s for s in subs]
    with open("%s/cmdipc.1" % outdir, "w") as f:
        f.write(page("cmdipc", "cmdipc", "talk to cmd-ipc (spec-v1) registries from the shell",
                     split_sections(main_help), ver, pages[1:]))
    for sub in subs:
        name = "cmdipc-" + sub
        with open("%s/%s.1" % (outdir, name), "w") as f:
            f.write(page("cmdipc-" + sub, name, summaries[sub],
                         split_sections(run_help(exe, sub)), ver,
                         ["cmdipc"] + [p for p in pages[1:] if p != name]))


if __name__ == "__main__":
    main()
