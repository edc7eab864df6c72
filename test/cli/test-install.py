#!/usr/bin/env python3
"""What a distribution or a user installing cmdipc gets (TAP on stdout).

From a copy of the source tree (as a tarball would give it) with a scratch
$HOME, runs every shell block of docs/install.md as written (doctest.py): an
install to a prefix of one's own and running the tool from there, building a
program against it, dynamically and statically, and building the Debian
packages with dpkg-buildpackage. Then checks what those produced:

- every symbol the installed libcmdipc.so exports carries the version node
  CMDIPC_0 (cmdipc.map), and the soname is libcmdipc.so.0;
- the prefix holds a man page per sub-command and both completions;
- debian/changelog's version is meson's project version;
- the packages hold what debian/control says, and the tool from the package
  runs against the library from the package.

DEB_BUILD_OPTIONS=nocheck: the suites ran already (the build's own tests would
run them a third time). Environment: CMDIPC_EXE, CMDIPC_SOURCE_ROOT.
"""
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import doctest  # noqa: E402  (test/cli/doctest.py)

CMDIPC = os.environ.get("CMDIPC_EXE", "")
ROOT = os.environ.get("CMDIPC_SOURCE_ROOT", "")
MULT = float(os.environ.get("CMDIPC_TEST_TIMEOUT_MULTIPLIER", "1"))


def out(*args, **kw):
    return subprocess.run(list(args), capture_output=True, text=True, check=True, **kw).stdout


def copy_tree(dst):
    """The source tree without version control and build directories."""
    tar = subprocess.Popen(["tar", "--exclude-vcs", "--exclude=./build", "--exclude=./build-*",
                            "--exclude=__pycache__", "-cf", "-", "."], cwd=ROOT,
                           stdout=subprocess.PIPE)
    subprocess.run(["tar", "-xf", "-", "-C", dst], stdin=tar.stdout, check=True)
    if tar.wait() != 0:
        raise RuntimeError("tar failed")


def project_version():
    text = open(os.path.join(ROOT, "meson.build")).read()
    return re.search(r"project\('cmdipc',.*?version: '([^']+)'", text, re.S).group(1)


def sub_commands():
    help_text = out(CMDIPC, "--help")
    section = help_text.split("Commands:\n", 1)[1].split("\n\n", 1)[0]
    return [l.split()[0] for l in section.splitlines() if l.split()[0] != "help"]


def check_symbol_versions(home):
    libs = glob.glob(os.path.join(home, ".local/cmdipc/lib*/**/libcmdipc.so.0", ), recursive=True)
    if len(libs) != 1:
        return False, "installed libcmdipc.so.0: %r" % libs
    dyn = out("readelf", "-d", libs[0])
    if "Library soname: [libcmdipc.so.0]" not in dyn:
        return False, "soname: %s" % dyn
    syms = [l.split() for l in out("objdump", "-T", libs[0]).splitlines()]
    exported = [s for s in syms if len(s) >= 7 and s[-1].startswith("cmdipc_") and
                s[3] == ".text"]
    bad = [s[-1] for s in exported if s[-2] != "CMDIPC_0"]
    if len(exported) < 50 or bad:
        return False, "%d exported functions; without CMDIPC_0: %r" % (len(exported), bad[:10])
    return True, "%d functions, all CMDIPC_0" % len(exported)


def check_prefix(home):
    prefix = os.path.join(home, ".local/cmdipc")
    pages = {os.path.basename(p) for p in glob.glob(prefix + "/share/man/man1/*.1")}
    want = {"cmdipc.1"} | {"cmdipc-%s.1" % s for s in sub_commands()}
    if pages != want:
        return False, "man pages %s, expected %s" % (sorted(pages), sorted(want))
    for f in ("share/bash-completion/completions/cmdipc", "share/zsh/site-functions/_cmdipc",
              "share/doc/cmdipc/LICENSE", "share/doc/cmdipc/docs/protocol.md",
              "include/cmdipc.h", "bin/cmdipc"):
        if not os.path.exists(os.path.join(prefix, f)):
            return False, "%s is not installed" % f
    # Moved elsewhere, the tool still finds its library ($ORIGIN).
    moved = prefix + "-moved"
    shutil.copytree(prefix, moved, symlinks=True)
    r = subprocess.run([moved + "/bin/cmdipc", "--version"], capture_output=True, text=True,
                       env={"PATH": "/usr/bin:/bin"})
    shutil.rmtree(moved)
    if r.returncode != 0 or "libcmdipc %s" % project_version() not in r.stdout:
        return False, "the moved prefix's cmdipc: %r" % r
    return True, "%d man pages, completions, docs; relocatable" % len(pages)


def check_changelog(src):
    v = out("dpkg-parsechangelog", "-S", "Version", cwd=src).strip()
    if v != project_version():
        return False, "debian/changelog says %s, meson.build %s" % (v, project_version())
    return True, v


def check_packages(scratch):
    v = project_version()
    arch = out("dpkg", "--print-architecture").strip()
    want = {
        "libcmdipc0": ["usr/lib/*/libcmdipc.so.0", "usr/lib/*/libcmdipc.so.%s" % v,
                       "usr/share/doc/libcmdipc0/copyright"],
        "libcmdipc-dev": ["usr/include/cmdipc.h", "usr/include/cmdipc/registry.h",
                          "usr/lib/*/libcmdipc.so", "usr/lib/*/libcmdipc.a",
                          "usr/lib/*/pkgconfig/cmdipc.pc", "usr/lib/*/pkgconfig/cmdipc-static.pc"],
        "cmdipc": ["usr/bin/cmdipc", "usr/share/man/man1/cmdipc.1.gz",
                   "usr/share/bash-completion/completions/cmdipc",
                   "usr/share/zsh/vendor-completions/_cmdipc",
                   "usr/share/doc/cmdipc/copyright", "usr/share/doc/cmdipc/changelog.gz"]
                  + ["usr/share/man/man1/cmdipc-%s.1.gz" % s for s in sub_commands()],
    }
    root = os.path.join(scratch, "root")
    for pkg, files in want.items():
        deb = os.path.join(scratch, "%s_%s_%s.deb" % (pkg, v, arch))
        if not os.path.exists(deb):
            return False, "no %s" % os.path.basename(deb)
        out("dpkg-deb", "-x", deb, root)
        for f in files:
            if not glob.glob(os.path.join(root, f)):
                return False, "%s lacks %s" % (pkg, f)
    depends = out("dpkg-deb", "-f", os.path.join(scratch, "cmdipc_%s_%s.deb" % (v, arch)),
                  "Depends")
    if not re.search(r"\blibcmdipc0 \(>= %s\)" % re.escape(v), depends) or "libuv1" not in depends:
        return False, "cmdipc's Depends: %s" % depends
    if os.path.exists(os.path.join(root, "usr/share/doc/cmdipc/LICENSE")):
        return False, "LICENSE shipped next to copyright"
    libdir = glob.glob(os.path.join(root, "usr/lib/*/libcmdipc.so.0"))[0]
    r = subprocess.run([os.path.join(root, "usr/bin/cmdipc"), "--version"], capture_output=True,
                       text=True, env={"LD_LIBRARY_PATH": os.path.dirname(libdir)})
    if r.returncode != 0 or not r.stdout.startswith("cmdipc %s (libcmdipc %s" % (v, v)):
        return False, "the packaged cmdipc: %r" % r
    if "RUNPATH" in out("readelf", "-d", os.path.join(root, "usr/bin/cmdipc")):
        return False, "the packaged cmdipc has a run path"
    return True, "3 packages"


def main():
    if not (os.access(CMDIPC, os.X_OK) and os.path.isdir(ROOT)):
        print("1..1\nnot ok 1 - setup\n#   CMDIPC_EXE and CMDIPC_SOURCE_ROOT must be set "
              "(test/cli/meson.build sets them)")
        return 1
    scratch = tempfile.mkdtemp(prefix="cmdipc-install-", dir="/tmp")
    try:
        src, home = os.path.join(scratch, "src"), os.path.join(scratch, "home")
        for d in (src, home, os.path.join(scratch, "tmp")):
            os.makedirs(d)
        copy_tree(src)
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("MESON", "CMDIPC_", "LD_", "ASAN", "UBSAN", "MALLOC_",
                                    "PKG_CONFIG", "DEB_"))}
        env.update(HOME=home, TMPDIR=os.path.join(scratch, "tmp"), DEB_BUILD_OPTIONS="nocheck",
                   PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        failed = doctest.tap(doctest.blocks(os.path.join(src, "docs", "install.md")), src, env,
                             int(600 * MULT), extra=[
                                 ("exported symbols carry CMDIPC_0",
                                  lambda: check_symbol_versions(home)),
                                 ("the prefix holds what meson installs",
                                  lambda: check_prefix(home)),
                                 ("debian/changelog has meson's version",
                                  lambda: check_changelog(src)),
                                 ("the Debian packages", lambda: check_packages(scratch)),
                             ])
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
