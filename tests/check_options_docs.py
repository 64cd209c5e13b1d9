#!/usr/bin/env python3
"""options_docs: the options the docs name are the options the programs take.

(a) docs/options.md is exactly `dptrain --help-markdown` (both come from the option table in
    src/driver/cli.c), and every option of `dptrain --help` is in it and vice versa.
(b) every --option in README.md and docs/*.md, whatever their layout, exists:
    - the options tables (rows whose first cell starts with an --option) each belong
      wholly to one program: dptrain, dptrain-eval or dptrain-data (their --help);
    - in code (blocks and `spans`), what follows `dptrain`, `scripts/train.sh` or a job
      script (*.sbatch, whose arguments go to dptrain) must be a dptrain option, and what
      follows `dptrain-eval` / `dptrain-data` one of theirs;
    - any other mention must be an option of one of our programs, of a script or program
      in the repository (scripts/, bench/, jobs/, datasets/, tests/, .ci/ mention it), or
      of an outside program listed in OUTSIDE below.

usage: check_options_docs.py DPTRAIN DPTRAIN_EVAL DPTRAIN_DATA SOURCE_DIR [DOCS_ROOT]
(DOCS_ROOT defaults to SOURCE_DIR; with another root, (a) is skipped.)
"""
import os
import re
import subprocess
import sys

# Options of programs that are not ours, as the docs use them with these programs.
OUTSIDE = {
    "mpirun": ["map-by", "bind-to", "oversubscribe", "np", "host", "hostfile", "report-bindings"],
    "srun/sbatch": ["mpi", "kill-on-bad-exit", "cpu-bind", "signal", "time", "partition",
                    "account", "ntasks", "ntasks-per-node", "cpus-per-task", "nodes", "array",
                    "output", "requeue", "open-mode", "pty"],
    "cmake": ["build", "install", "target", "parallel", "prefix"],
    "ctest": ["output-on-failure", "test-dir"],
    "docker/podman": ["privileged"],
    "unshare": ["net", "uts", "mount", "propagation"],
}

OPTION = re.compile(r"(?<![\w-])--([a-z][a-z0-9]*(?:-[a-z0-9]+)*)")
LINK_TARGET = re.compile(r"\]\([^)]*\)")
HTML_COMMENT = re.compile(r"<!--.*?-->")
# A program in code whose options follow it, up to the end of the command.
PROGRAM = re.compile(r"(?:^|(?<=[\s/]))(dptrain-eval|dptrain-data|dptrain|train\.sh|[\w.-]+\.sbatch)"
                     r"(?=\s|$)")
COMMAND_END = re.compile(r"\s#|\||;|&&|>|<|\)")
CELL_SPLIT = re.compile(r"(?<!\\)\|")

failures = []


def fail(msg):
    failures.append(msg)


def run_help(binary, *args):
    out = subprocess.run([binary, *args], capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        sys.exit(f"FAIL: {binary} {' '.join(args)} exited {out.returncode}: {out.stderr}")
    return out.stdout


def help_options(text):
    """Options listed in a --help text: lines that start with two spaces and --name."""
    found = {m.group(1) for m in re.finditer(r"^  --([a-z][a-z0-9-]*)", text, re.M)}
    return found | {"help"}


def repo_script_options(source):
    found = set()
    for top in ("scripts", "bench", "jobs", "datasets", "tests", ".ci"):
        for root, _, files in os.walk(os.path.join(source, top)):
            for name in files:
                if name.endswith((".sh", ".py", ".sbatch", ".c")) or "." not in name:
                    try:
                        with open(os.path.join(root, name), encoding="utf-8") as f:
                            found |= set(OPTION.findall(f.read()))
                    except (UnicodeDecodeError, OSError):
                        pass
    return found


def code_segments(line, in_block):
    """(text, is_code) pieces of one markdown line."""
    if in_block:
        return [(line, True)]
    parts = line.split("`")
    return [(p, i % 2 == 1) for i, p in enumerate(parts)]


def table_check(rows, where, programs):
    """An options table: its first-cell options must all belong to one program."""
    names = set().union(*map(first_cell_options, rows))
    if not names or any(names <= options for options in programs.values()):
        return
    missing = sorted(names - programs["dptrain"])
    fail(f"{where}: the options table names --{', --'.join(missing)}, which dptrain --help "
         f"does not list (nor does one other program take all of the table's options)")


def scan_code(text, program, programs, where):
    """Options after a program in a piece of code; returns (checked, program still open)."""
    checked = set()
    pos = 0
    while True:
        if program is None:
            m = PROGRAM.search(text, pos)
            if not m:
                return checked, None
            program = {"train.sh": "dptrain"}.get(m.group(1), m.group(1))
            if program.endswith(".sbatch"):
                program = "dptrain"
            pos = m.end()
        end = COMMAND_END.search(text, pos)
        stop = end.start() if end else len(text)
        for name in OPTION.findall(text[pos:stop]):
            checked.add(name)
            if name not in programs[program]:
                fail(f"{where}: {program} --{name}: {program} --help does not list --{name}")
        if not end:
            return checked, (program if text.rstrip().endswith("\\") else None)
        pos, program = stop + 1, None


def first_cell_options(line):
    """The options a table row is about: its first cell's, when that cell starts with one
    (rows about commands or anything else start otherwise)."""
    cells = CELL_SPLIT.split(line.strip().strip("|"))
    if not cells or not cells[0].strip().strip("`").startswith("--"):
        return set()
    return set(OPTION.findall(cells[0]))


def check_markdown(path, programs, known):
    where_file = os.path.relpath(path)
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    in_block, table, table_at, program = False, [], 0, None
    for no, raw in enumerate(lines + [""], 1):
        line = HTML_COMMENT.sub("", LINK_TARGET.sub("]()", raw))
        where = f"{where_file}:{no}"
        is_row = not in_block and line.lstrip().startswith("|")
        if table and not is_row:  # a table ended: check it as a whole
            table_check(table, f"{where_file}:{table_at}", programs)
            table = []
        if line.lstrip().startswith("```"):
            in_block, program = not in_block, None
            continue
        checked = set()
        if is_row:
            table_at = table_at if table else no
            table.append(line)
            checked |= first_cell_options(line)
        for text, is_code in code_segments(line, in_block):
            if is_code:
                got, program = scan_code(text, program if in_block else None, programs, where)
                checked |= got
        for name in OPTION.findall(line):
            if name not in checked and name not in known:
                fail(f"{where}: --{name} is no option of dptrain, dptrain-eval, dptrain-data, "
                     f"a repository script or a program in OUTSIDE (check_options_docs.py)")


def check_options_page(source, dptrain, listed):
    page = os.path.join(source, "docs", "options.md")
    if not os.path.exists(page):
        fail("docs/options.md is missing: dptrain --help-markdown > docs/options.md")
        return
    with open(page, encoding="utf-8") as f:
        text = f.read()
    if text != run_help(dptrain, "--help-markdown"):
        fail("docs/options.md differs from `dptrain --help-markdown`: regenerate it with "
             "build/dptrain --help-markdown > docs/options.md")
    documented = set().union(*(first_cell_options(l) for l in text.split("\n")
                               if l.startswith("|")))
    for name in sorted(listed - documented):
        fail(f"dptrain --help lists --{name}, docs/options.md does not")
    for name in sorted(documented - listed):
        fail(f"docs/options.md lists --{name}, dptrain --help does not")
    print(f"ok: dptrain --help and docs/options.md list the same {len(listed)} options")


def main():
    if len(sys.argv) not in (5, 6):
        sys.exit(__doc__)
    dptrain, dp_eval, dp_data, source = sys.argv[1:5]
    docs_root = sys.argv[5] if len(sys.argv) == 6 else source
    programs = {
        "dptrain": help_options(run_help(dptrain, "--help")),
        "dptrain-eval": help_options(run_help(dp_eval, "--help")),
        "dptrain-data": help_options(run_help(dp_data, "--help")),
    }
    if len(programs["dptrain"]) < 10:
        sys.exit(f"FAIL: only {len(programs['dptrain'])} options found in dptrain --help")
    if docs_root == source:
        check_options_page(source, dptrain, programs["dptrain"])
    known = set().union(*programs.values(), repo_script_options(source),
                        *map(set, OUTSIDE.values()))
    pages = [os.path.join(docs_root, "README.md")]
    docs = os.path.join(docs_root, "docs")
    pages += sorted(os.path.join(docs, n) for n in os.listdir(docs) if n.endswith(".md"))
    for page in pages:
        check_markdown(page, programs, known)
    for msg in failures:
        print("FAIL:", msg)
    if failures:
        return 1
    print(f"ok: every --option in {len(pages)} markdown files exists")
    return 0


if __name__ == "__main__":
    sys.exit(main())
