"""Every external command the controller runs comes from a package scripts/install-deps.sh installs.

The commands are derived from the code, not listed by hand:

- Python (archive_dr/, tests/, bench/, bootstrap/, scripts/): calls to subprocess.run/Popen/
  check_output/check_call/call and to the project's thin wrappers around them (found by
  reading the code: a function that hands one of its parameters to subprocess as the argv,
  such as archive_dr.lab.run(cmd) or `def sh(*argv)`), whose argv is a list or tuple literal
  (directly, or through a local variable, or `base + [...]`) starting with a string constant;
  and `shutil.which("x")` constants.
- Ansible modules that the controller runs itself (`-c local`, LOCAL_MODULES) and role scripts
  that a task runs on the controller (CONTROLLER_SCRIPTS): the command words of their argv lists.
- Shell (Makefile recipes, .ci/run, scripts/*.sh and the other shell scripts in scripts/):
  the first word of each simple command, `$(...)` included, and the interpreter of the shebang.

Only the first word of an argv runs on this machine: what follows `podman exec HOST`, the
command string given to `ssh`, and `bash -c` scripts run inside the lab hosts. Tools of the
virtualenv (ansible-playbook, molecule, pytest, archive-dr, ...) come from pyproject.toml.

Each command is mapped to its package with `dpkg -S` on this machine. A command that is not
installed here fails the test too, with the file:line that runs it, so a developer's machine
shows the gap and not only a fresh one.
"""
from __future__ import annotations

import ast
import functools
import importlib.metadata
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from archive_dr import prereqs
from archive_dr.paths import ROOT

INSTALL_DEPS = ROOT / "scripts" / "install-deps.sh"
PY_DIRS = ("archive_dr", "tests", "bench", "bootstrap", "scripts")
VENV_BINS = {ROOT / ".venv" / "bin", Path(sys.executable).parent}
SUBPROCESS_FUNCS = {"run", "Popen", "check_output", "check_call", "call"}
SYSTEM_DIRS = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")

# Commands the code runs that scripts/install-deps.sh deliberately does not install. Keep it short.
ALLOWED = {
    # An optional alternative: tests/unit/test_report_render.py tries Ubuntu's name only when
    # Debian's `chromium` (installed by install-deps.sh) is absent.
    "chromium-browser": "Ubuntu's name for chromium, tried only when chromium is absent",
    # install-deps.sh installs everything else with it (and the depot build downloads with it);
    # apt (Priority: important) is on every Debian system that can install packages at all.
    "apt-get": "install-deps.sh installs with it",
    # `make lab` / `make test` (and .ci/run) run install-deps.sh through make, so make must be
    # there before install-deps.sh can run: the README's quick start has to say so.
    "make": "runs install-deps.sh, so it is needed before it",
}

# Needed, but not run by our code: the check resolves them like commands. "/..." is a path,
# "font:zh" a font fontconfig finds for Chinese, "package:x" a package that must be installed.
INDIRECT = {
    **{(f"{prereqs.PODMAN_HELPER_DIRS.split(':')[-1]}/{name}" if entry.helper else name): entry.why
       for name, entry in prereqs.PREREQUISITES.items() if entry.why},
    "/usr/lib/podman/aardvark-dns": "netavark's DNS server, for networks with DNS (Molecule's)",
    "gpg-agent": "gpg starts it to generate the depot signing key (archive_dr/pki.py)",
    "font:zh": "the drill and inspection reports are in Chinese; chromium renders them",
    "package:python3-venv": "`python3 -m venv` in the Makefile needs ensurepip",
}

# Must be in the derived set: if one disappears, the derivation (not the code) is probably broken.
EXPECTED = {"podman", "debootstrap", "ip", "tc", "nft", "losetup", "parted", "mkfs.xfs", "mkfs.btrfs",
            "chromium", "xorriso", "par2", "qpdf", "ssh", "ssh-keygen", "bridge", "nsenter"}


# ----------------------------------------------------------------- install-deps.sh

def install_deps_packages(text: str | None = None) -> list[str]:
    text = INSTALL_DEPS.read_text() if text is None else text
    match = re.search(r'^packages="([^"]*)"', text, re.M)
    assert match, f"{INSTALL_DEPS}: no packages=\"...\" list"
    return match.group(1).split()


# ------------------------------------------------------------------- Python code

def _py_files() -> list[Path]:
    files = []
    for top in PY_DIRS:
        files += [p for p in sorted((ROOT / top).rglob("*.py")) if "__pycache__" not in p.parts]
    for path in sorted((ROOT / "scripts").iterdir()):
        if path.is_file() and path.suffix != ".py" and re.match(r"#!.*python", _first_line(path)):
            files.append(path)
    return files + [ROOT / rel for rel in CONTROLLER_SCRIPTS]


def _first_line(path: Path) -> str:
    try:
        with path.open(errors="replace") as handle:
            return handle.readline()
    except OSError:
        return ""


class _Module:
    """One Python file: its imports, functions, and the local list assignments of each scope."""

    def __init__(self, path: Path):
        self.path = path
        self.rel = path.relative_to(ROOT).as_posix()
        self.tree = ast.parse(path.read_text(), filename=str(path))
        self.aliases: dict[str, str] = {}       # local name -> dotted module or module.attr
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    self.aliases[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
            elif isinstance(node, ast.ImportFrom) and node.module:
                for a in node.names:
                    self.aliases[a.asname or a.name] = f"{node.module}.{a.name}"
        self.parents: dict[ast.AST, ast.AST] = {}
        for node in ast.walk(self.tree):
            for child in ast.iter_child_nodes(node):
                self.parents[child] = node
        self.functions = {n.name: n for n in self.tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}

    def scope(self, node: ast.AST) -> ast.AST:
        while node in self.parents:
            node = self.parents[node]
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                return node
        return self.tree

    def subprocess_call(self, call: ast.Call) -> bool:
        func = call.func
        if isinstance(func, ast.Attribute) and func.attr in SUBPROCESS_FUNCS and isinstance(func.value, ast.Name):
            return self.aliases.get(func.value.id) == "subprocess"
        if isinstance(func, ast.Name):
            return self.aliases.get(func.id) in {f"subprocess.{f}" for f in SUBPROCESS_FUNCS}
        return False

    def first_word(self, node: ast.expr, scope: ast.AST, depth: int = 0) -> str | None:
        """The constant first element of an argv expression, following simple local assignments."""
        if depth > 5:
            return None
        if isinstance(node, (ast.List, ast.Tuple)):
            if node.elts and isinstance(node.elts[0], ast.Constant) and isinstance(node.elts[0].value, str):
                return node.elts[0].value
            return None
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            return self.first_word(node.left, scope, depth + 1)
        if isinstance(node, ast.Name):
            for value in self.assignments(scope, node.id):
                word = self.first_word(value, scope, depth + 1)
                if word is not None:
                    return word
        return None

    def assignments(self, scope: ast.AST, name: str) -> list[ast.expr]:
        values = []
        for node in ast.walk(scope):
            if self.scope(node) is not scope and node is not scope:
                continue
            if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
                values.append(node.value)
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.target.id == name \
                    and node.value is not None:
                values.append(node.value)
        if not values and scope is not self.tree:
            return self.assignments(self.tree, name)
        return values


def _params(func: ast.FunctionDef) -> tuple[list[str], str | None]:
    return [a.arg for a in func.args.posonlyargs + func.args.args], (func.args.vararg.arg if func.args.vararg else None)


def _argv_position(module: _Module, func: ast.FunctionDef, wrappers: dict) -> int | str | None:
    """Whether `func` passes one of its parameters to subprocess (or to a known wrapper) as the argv:
    the positional index of that parameter, "*" for `*argv`, else None."""
    positional, vararg = _params(func)
    for node in ast.walk(func):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        argv = None
        if module.subprocess_call(node):
            argv = node.args[0]
        else:
            target = _wrapper_for(module, node.func, wrappers)
            if target is not None and target != "*" and len(node.args) > target:
                argv = node.args[target]
        if isinstance(argv, ast.Name):
            if argv.id == vararg:
                return "*"
            if argv.id in positional:
                return positional.index(argv.id)
    return None


def _wrapper_for(module: _Module, func: ast.expr, wrappers: dict) -> int | str | None:
    """The argv position if `func` names a wrapper: `run(...)` of this file or imported, or `lab.run(...)`."""
    if isinstance(func, ast.Name):
        if (module.rel, func.id) in wrappers:
            return wrappers[(module.rel, func.id)]
        dotted = module.aliases.get(func.id)
        if dotted and "." in dotted:
            mod, name = dotted.rsplit(".", 1)
            return _lookup(wrappers, mod, name)
    elif isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
        dotted = module.aliases.get(func.value.id)
        if dotted:
            return _lookup(wrappers, dotted, func.attr)
    return None


def _lookup(wrappers: dict, dotted_module: str, name: str) -> int | str | None:
    stem = dotted_module.rsplit(".", 1)[-1]
    tail = dotted_module.replace(".", "/")
    for (rel, fname), position in wrappers.items():
        if fname == name and (rel.endswith(f"/{tail}.py") or rel == f"{tail}.py" or Path(rel).stem == stem):
            return position
    return None


def _python_commands(files: list[Path]) -> list[tuple[str, str]]:
    modules = [_Module(p) for p in files]
    wrappers: dict[tuple[str, str], int | str] = {}
    changed = True
    while changed:  # wrappers of wrappers
        changed = False
        for module in modules:
            for name, func in module.functions.items():
                if (module.rel, name) in wrappers:
                    continue
                position = _argv_position(module, func, wrappers)
                if position is not None:
                    wrappers[(module.rel, name)] = position
                    changed = True
    found = []
    for module in modules:
        for node in ast.walk(module.tree):
            if not isinstance(node, ast.Call):
                continue
            where = f"{module.rel}:{node.lineno}"
            func = node.func
            if isinstance(func, ast.Attribute) and func.attr == "which" and isinstance(func.value, ast.Name) \
                    and module.aliases.get(func.value.id) == "shutil":
                if node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                    found.append((node.args[0].value, where))
                continue
            scope = module.scope(node)
            if module.subprocess_call(node):
                if node.args:
                    word = module.first_word(node.args[0], scope)
                    if word is not None:
                        found.append((word, where))
                continue
            position = _wrapper_for(module, func, wrappers)
            if position == "*":
                if node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                    found.append((node.args[0].value, where))
            elif position is not None and len(node.args) > position:
                word = module.first_word(node.args[position], scope)
                if word is not None:
                    found.append((word, where))
    return found


# Ansible modules are code of the managed hosts, except where the controller runs them itself
# (`-c local`): then the commands in their argv lists run here. module file -> what runs it here.
LOCAL_MODULES = {
    "library/storage_layout.py": "tests/host/test_storage_layout.py",
    "module_utils/storage_plan.py": "tests/host/test_storage_layout.py",
    "module_utils/archive_offline.py": "tests/unit/test_offline.py",
    "module_utils/archive_verify.py": "tests/unit/test_verify.py",
    "module_utils/inventory_checks.py": "playbooks/validate.yml",
}
# Scripts of roles that a task runs on the controller (delegate_to: localhost): walked like our code.
CONTROLLER_SCRIPTS = {
    "roles/depot/files/depot_build.py": "roles/depot/tasks/build.yml",
}
COMMAND_WORD = re.compile(r"^(?:[a-z][a-z0-9_.+-]*|/[A-Za-z0-9_/.+-]+)$")


def _module_commands(rel: str) -> list[tuple[str, str]]:
    """Commands in a module's argv lists: a list literal with a constant command word first that is
    passed to a call, assigned to argv/cmd, has an option second, or is the argv of a plan action
    (a tuple whose first element names the same command)."""
    module = _Module(ROOT / rel)
    found = []
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "which" \
                and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
            found.append((node.args[0].value, f"{rel}:{node.lineno}"))
        if not (isinstance(node, ast.List) and node.elts and isinstance(node.elts[0], ast.Constant)
                and isinstance(node.elts[0].value, str) and COMMAND_WORD.match(node.elts[0].value)):
            continue
        word, parent = node.elts[0].value, module.parents.get(node)
        second = node.elts[1] if len(node.elts) > 1 else None
        if (isinstance(parent, ast.Call) and node in parent.args) \
                or (isinstance(parent, ast.Assign) and any(isinstance(t, ast.Name) and re.search("argv|cmd", t.id)
                                                           for t in parent.targets)) \
                or (isinstance(second, ast.Constant) and str(second.value).startswith("-")) \
                or (isinstance(parent, ast.Tuple) and parent.elts and isinstance(parent.elts[0], ast.Constant)
                    and parent.elts[0].value == word):
            found.append((word, f"{rel}:{node.lineno}"))
    return found


# -------------------------------------------------------------------- shell code

SHELL_SKIP = {
    # keywords and builtins: not commands from a package
    "if", "then", "else", "elif", "fi", "for", "in", "do", "done", "while", "until", "case", "esac", "function",
    "!", "{", "}", "[[", "]]", "[", "test", "cd", "set", "export", "unset", "trap", "exit", "return", "echo",
    "printf", "local", "read", "shift", "source", ".", "eval", "true", "false", ":", "umask", "wait", "type",
    "command", "exec", "builtin", "declare", "readonly", "let", "hash", "ulimit", "time",
}
SEPARATORS = {";", "&&", "||", "|", "&", "(", ")", ";;", "|&", "\n"}
ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\+?=")
SUBSTITUTION = re.compile(r"\$\((?!\()\s*([^\s()\"';|&`$]+)")


def _strip_comments(text: str) -> str:
    """The text without its shell comments (an unquoted # at a word start), line numbers kept."""
    lines = []
    for line in text.splitlines():
        quote, kept = None, []
        for index, char in enumerate(line):
            if quote:
                quote = None if char == quote else quote
            elif char in "'\"":
                quote = char
            elif char == "#" and (index == 0 or line[index - 1] in " \t;|&("):
                break
            kept.append(char)
        lines.append("".join(kept))
    return "\n".join(lines) + "\n"


def _shell_words(text: str, first_line: int) -> list[tuple[str, int]]:
    """(word, line) of every simple command's command word in a shell text."""
    found = []
    text = _strip_comments(text)
    for offset, line in enumerate(text.splitlines()):
        for match in SUBSTITUTION.finditer(line):
            found.append((match.group(1), first_line + offset))
    lexer = shlex.shlex(text, posix=True, punctuation_chars=";&|()<>")
    lexer.whitespace = " \t\r"          # newlines end commands
    lexer.wordchars += "$%+,:@^{}[]!#"
    lexer.commenters = ""
    at_start, skip_until, functions = True, None, set()
    tokens, line = [], 1    # (shlex's own lineno counts a newline twice in punctuation mode)
    try:
        while (token := lexer.get_token()) is not None:
            tokens.append((token, line))
            line += token.count("\n")
    except ValueError:
        pass  # an unbalanced quote: keep what was read
    previous = None
    for index, (token, line) in enumerate(tokens):
        if skip_until is not None:
            if token == skip_until:
                skip_until = None
                at_start = True
            previous = token
            continue
        if token in SEPARATORS or "\n" in token:
            at_start = True
            previous = token
            continue
        if token in ("<", ">", ">>", "<<", ">&", "<&") or re.fullmatch(r"\d?[<>]+&?", token):
            previous = token
            continue
        if previous is not None and re.fullmatch(r"\d?[<>]+&?", previous):
            previous = token          # a redirection target
            continue
        if at_start:
            if ASSIGNMENT.match(token):
                previous = token
                continue
            if token in ("for", "case", "select"):
                skip_until = "\n" if token != "for" else "do"
                at_start = False
                previous = token
                continue
            if token in ("then", "else", "do", "if", "elif", "while", "until", "!", "{", "time", "exec", "command"):
                previous = token
                continue
            nxt = tokens[index + 1][0] if index + 1 < len(tokens) else None
            if nxt == "()" or (nxt == "(" and index + 2 < len(tokens) and tokens[index + 2][0] == ")"):
                functions.add(token)
            elif token not in SHELL_SKIP and token not in functions and "$" not in token:
                found.append((token, first_line + line - 1))
            at_start = False
        previous = token
    return [(w, n) for w, n in found if w not in functions and w not in SHELL_SKIP]


def _make_variables(text: str) -> dict[str, str]:
    variables = {"CURDIR": str(ROOT)}
    for match in re.finditer(r"^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*[:?]?=\s*(.*)$", text, re.M):
        variables[match.group(1)] = match.group(2).strip()
    return variables


def _expand(text: str, variables: dict[str, str]) -> str:
    for _ in range(5):
        text = re.sub(r"\$[({]([A-Za-z_][A-Za-z0-9_]*)[)}]", lambda m: variables.get(m.group(1), m.group(0)), text)
    return text


def _shell_files() -> list[Path]:
    files = [ROOT / ".ci" / "run"]
    for path in sorted((ROOT / "scripts").iterdir()):
        if path.is_file() and (path.suffix == ".sh" or re.match(r"#!.*\b(ba|da)?sh\b", _first_line(path))):
            files.append(path)
    return [p for p in files if p.exists()]


def _shebang(path: Path) -> list[str]:
    line = _first_line(path)
    if not line.startswith("#!"):
        return []
    words = line[2:].split()
    if words and words[0].endswith("/env") and len(words) > 1:
        return [Path(words[0]).name, words[1]]
    return [Path(words[0]).name] if words else []


def _shell_commands() -> list[tuple[str, str]]:
    found = []
    makefile = ROOT / "Makefile"
    text = makefile.read_text()
    variables = _make_variables(text)
    if "SHELL" in variables:
        found.append((Path(variables["SHELL"]).name, "Makefile: SHELL"))
    for number, line in enumerate(text.splitlines(), start=1):
        if line.startswith("\t"):
            recipe = _expand(line.strip().lstrip("@-+"), variables)
            found += [(word, f"Makefile:{number}") for word, _ in _shell_words(recipe, number)]
    for path in _shell_files():
        rel = path.relative_to(ROOT).as_posix()
        found += [(word, f"{rel}:1") for word in _shebang(path)]
        found += [(word, f"{rel}:{line}") for word, line in _shell_words(path.read_text(), 1)]
    return found


# ----------------------------------------------------------------- the derivation

@functools.lru_cache(maxsize=1)
def _console_scripts() -> frozenset[str]:
    return frozenset(ep.name for ep in importlib.metadata.entry_points(group="console_scripts"))


def is_venv_tool(command: str) -> bool:
    """Provided by pyproject.toml: a console script of an installed distribution, or in the venv's bin.
    The venv's own interpreter is not: `python3 -m venv` runs the system's before the venv exists."""
    if "/" in command:
        path = (ROOT / command) if not command.startswith("/") else Path(command)
        return any(str(path).startswith(str(b) + "/") for b in VENV_BINS)
    if command in _console_scripts():
        return True
    return not command.startswith("python") and any((b / command).exists() for b in VENV_BINS)


def _is_project_file(command: str) -> bool:
    return "/" in command and not command.startswith("/") and (ROOT / command).exists() \
        and not is_venv_tool(command)


@functools.lru_cache(maxsize=1)
def derived_commands() -> dict[str, list[str]]:
    """command -> the file:line places that run it on the controller."""
    commands: dict[str, list[str]] = {}
    module_commands = [found for rel in LOCAL_MODULES for found in _module_commands(rel)]
    for word, where in _python_commands(_py_files()) + module_commands + _shell_commands():
        if is_venv_tool(word) or _is_project_file(word):
            continue
        name = Path(word).name if word.startswith("/") else word
        if "/" in name or not name or name.startswith("-"):
            continue
        commands.setdefault(word if word.startswith("/") else name, []).append(where)
    return commands


# ---------------------------------------------------------------- the packages

def _twins(path: str) -> list[str]:
    """The merged-/usr aliases of a path: /usr/bin/x <-> /bin/x, /usr/sbin/x <-> /sbin/x."""
    for short in ("/bin/", "/sbin/", "/lib/"):
        if path.startswith("/usr" + short):
            return [path, path[len("/usr"):]]
        if path.startswith(short):
            return [path, "/usr" + path]
    return [path]


def _dpkg_search(paths: list[str]) -> dict[str, set[str]]:
    """path -> owning packages, from one `dpkg -S` call; a diverted path counts for the diverting package,
    or, for a local diversion, for the package owning the diverted-to file."""
    if not paths:
        return {}
    proc = subprocess.run(["dpkg", "-S", *paths], capture_output=True, text=True)
    owners: dict[str, set[str]] = {}
    diverted: dict[str, tuple[str, str | None]] = {}   # path -> (diverted-to path, diverting package)
    source = None
    for line in proc.stdout.splitlines():
        # "diversion by dash from: /bin/sh", "diversion by dash to: /bin/sh.distrib", "local diversion from: ..."
        match = re.match(r"^(?:local diversion|diversion by (\S+)) (from|to): (.+)$", line)
        if match:
            if match.group(2) == "from":
                source = match.group(3)
                diverted[source] = ("", match.group(1))
            elif source is not None:
                diverted[source] = (match.group(3), diverted[source][1])
            continue
        if match := re.match(r"^(.+?): (/.*)$", line):
            owners.setdefault(match.group(2), set()).update(
                p.strip().split(":")[0] for p in match.group(1).split(","))
    for path, (target, by) in diverted.items():
        if path not in owners:
            if by:
                owners[path] = {by}
            elif target:
                owners[path] = _dpkg_search([target]).get(target, set())
    return owners


def _candidates(command: str) -> list[str]:
    """Where the command is on this machine: PATH and the system directories, symlinks resolved."""
    if command.startswith("/"):
        found = [command] if os.path.lexists(command) else []
    else:
        search = os.pathsep.join([os.environ.get("PATH", ""), *SYSTEM_DIRS])
        found = [p for p in (shutil.which(command, path=search),) if p]
        found += [f"{d}/{command}" for d in SYSTEM_DIRS if os.path.lexists(f"{d}/{command}")]
    paths = []
    for path in found:
        for candidate in (path, os.path.realpath(path)):
            for twin in _twins(candidate):
                if twin not in paths:
                    paths.append(twin)
    return paths


@functools.lru_cache(maxsize=None)
def providers(command: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(paths found on this machine, packages that own them)."""
    if command == "font:zh":
        proc = subprocess.run(["fc-list", ":lang=zh", "file"], capture_output=True, text=True)
        paths = sorted({line.split(":")[0].strip() for line in proc.stdout.splitlines() if line.strip()})
    elif command.startswith("package:"):
        name = command.split(":", 1)[1]
        proc = subprocess.run(["dpkg-query", "-W", "-f", "${Status}", name], capture_output=True, text=True)
        return ((name,), (name,)) if "ok installed" in proc.stdout else ((), ())
    else:
        paths = _candidates(command)
    owners = _dpkg_search(paths)
    return tuple(paths), tuple(sorted({pkg for path in paths for pkg in owners.get(path, ())}))


@functools.lru_cache(maxsize=1)
def essential_packages() -> frozenset[str]:
    proc = subprocess.run(["dpkg-query", "-W", "-f", "${Package} ${Essential}\n"], capture_output=True, text=True,
                          check=True)
    return frozenset(line.split()[0] for line in proc.stdout.splitlines() if line.endswith(" yes"))


def missing_providers(commands, packages) -> list[str]:
    """One message per command (an iterable of names, or a mapping name -> where it is run or why it is
    needed) that no package in `packages` and no Essential package provides on this machine."""
    packages = set(packages)
    places = commands if isinstance(commands, dict) else {c: "" for c in commands}
    problems = []
    for command, where in sorted(places.items()):
        if command in ALLOWED:
            continue
        if isinstance(where, (list, tuple)):
            where = ", ".join(where[:3]) + (f" and {len(where) - 3} more" if len(where) > 3 else "")
        label = f"{command} ({where})" if where else command
        paths, owners = providers(command)
        if not paths:
            problems.append(f"{label}: not installed on this machine")
        elif not owners:
            problems.append(f"{label}: {', '.join(paths)} belongs to no Debian package")
        elif not (set(owners) & (packages | essential_packages())):
            problems.append(f"{label}: provided by package {' or '.join(owners)}, "
                            f"which scripts/install-deps.sh does not install")
    return problems


# ---------------------------------------------------------------------- the tests

def test_the_derivation_finds_what_the_lab_and_the_tests_run():
    commands = derived_commands()
    assert EXPECTED <= set(commands), f"not derived any more: {sorted(EXPECTED - set(commands))}"
    assert len(commands) >= 15, sorted(commands)
    # inside the lab hosts, not on the controller
    for inside in ("psql", "runuser", "restic", "pgbackrest", "iperf3", "journalctl", "pg_ctl"):
        assert inside not in commands, (inside, commands.get(inside))
    # the virtualenv's tools come from pyproject.toml
    for tool in ("ansible-playbook", "molecule", "pytest", "archive-dr", "yamllint", "ansible-lint"):
        assert tool not in commands, (tool, commands[tool])


def test_every_command_the_controller_runs_is_installed_by_install_deps():
    problems = missing_providers(derived_commands(), install_deps_packages())
    assert not problems, "\n".join(problems)


def test_indirect_requirements_are_installed_by_install_deps():
    problems = missing_providers(INDIRECT, install_deps_packages())
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("package, requirement", [
    ("parted", "parted"),
    ("btrfs-progs", "mkfs.btrfs"),
    ("xfsprogs", "mkfs.xfs"),
    ("iptables", "iptables"),
    ("fonts-noto-cjk", "font:zh"),
])
def test_taking_a_package_out_of_install_deps_is_reported(package, requirement):
    packages = install_deps_packages()
    assert package in packages
    needs = {**INDIRECT, **derived_commands()}
    assert requirement in needs
    problems = missing_providers({requirement: needs[requirement]}, [p for p in packages if p != package])
    assert len(problems) == 1 and problems[0].startswith(requirement) and f"package {package}" in problems[0], problems


def test_the_modules_and_scripts_said_to_run_on_the_controller_do():
    for rel, runner in {**LOCAL_MODULES, **CONTROLLER_SCRIPTS}.items():
        text = (ROOT / runner).read_text()
        name = Path(rel).stem
        uses = {"storage_plan": "storage_layout", "archive_offline": "offline-archive", "inventory_checks": ""}
        assert (ROOT / rel).exists(), rel
        assert uses.get(name, name) in text, f"{runner} does not run {rel} any more"
        assert re.search(r"-c\W+local|localhost|controller", text), f"{runner}: not on the controller?"


def test_a_command_that_is_not_installed_is_reported_with_where_it_runs():
    problems = missing_providers({"archive-dr-no-such-tool": ["bench/x.py:7"]}, install_deps_packages())
    assert problems == ["archive-dr-no-such-tool (bench/x.py:7): not installed on this machine"]


def test_the_lab_prerequisites_name_the_packages_that_provide_them():
    packages = install_deps_packages()
    for name, entry in prereqs.PREREQUISITES.items():
        command = f"{prereqs.PODMAN_HELPER_DIRS.split(':')[-1]}/{name}" if entry.helper else name
        paths, owners = providers(command)
        assert entry.package in owners, f"{name}: PREREQUISITES says {entry.package}, dpkg says {owners or paths}"
        assert entry.package in packages, f"{name}: {entry.package} is not in scripts/install-deps.sh"
    # everything archive_dr/lab/ runs is checked by `lab up` first, unless an Essential package has it
    lab_runs = {word for word, where in _python_commands(sorted((ROOT / "archive_dr" / "lab").glob("*.py")))}
    unchecked = {c for c in lab_runs - set(prereqs.PREREQUISITES)
                 if not set(providers(c)[1]) & essential_packages()}
    assert not unchecked, f"archive_dr/lab/ runs {sorted(unchecked)}, which prereqs.PREREQUISITES does not check"


def test_only_the_first_word_of_an_argv_counts(tmp_path, monkeypatch):
    code = tmp_path / "sample.py"
    code.write_text(
        "import subprocess, shutil\n"
        "from subprocess import Popen as P\n"
        "def run(cmd, check=True):\n    return subprocess.run(cmd, check=check)\n"
        "def sh(*argv):\n    return subprocess.run(argv)\n"
        "def podman(*args):\n    return run(['podman', *args])\n"
        "def go(host):\n"
        "    run(['tool-a', '-x'])\n"
        "    sh('tool-b', 'arg')\n"
        "    podman('exec', host, 'bash', '-c', 'inside-only')\n"
        "    base = ['tool-c', '--batch']\n"
        "    subprocess.run(base + ['--export'])\n"
        "    subprocess.run(['ssh', 'root@h', 'remote-only'])\n"
        "    P(('tool-d',))\n"
        "    shutil.which('tool-e')\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    words = sorted(word for word, _ in _python_commands([code]))
    assert words == ["podman", "ssh", "tool-a", "tool-b", "tool-c", "tool-d", "tool-e"]
    shell = "set -eu\nfile=\"$(dirname \"$0\")/x\"\nX=1 tool-f a | tool-g -q && echo hi\n" \
            "for p in $list; do\n  tool-h \"$p\" 2>/dev/null || missing=\"$missing $p\"\ndone\n" \
            "cleanup() {\n  true\n}\ntrap cleanup EXIT\nstart=$(date +%s)\n"
    assert sorted({w for w, _ in _shell_words(shell, 1)}) == ["date", "dirname", "tool-f", "tool-g", "tool-h"]
