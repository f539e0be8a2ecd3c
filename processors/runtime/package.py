"""`sieve package`: the Lambda artifacts exactly as they are uploaded, built for Lambda's platform.

  code.zip              processors/ (without the CLI's commands), the config the functions read
                        (SIEVE_CONFIG=/var/task/<config>) and the rule files it names. Every function of
                        the template runs this one code archive, each with its own handler.
  layer-<name>.zip      one per layer of the template (processors/runtime/sam.py LAYERS): the
                        pyproject.toml group it stands for, installed under python/ for the template's
                        runtime and architecture with `pip install --platform manylinux2014_x86_64
                        --only-binary=:all: --python-version 3.X --target ...`. A distribution that PyPI
                        has only as a source archive is built into a wheel first, and refused unless that
                        wheel is pure Python (py3-none-any): nothing compiled for this machine can reach
                        Lambda. An extra layer is resolved against the base layer's versions (pip
                        constraints) and leaves out what the base layer already ships.
  template.yaml         the SAM template with CodeUri / ContentUri pointing at these archives, so
                        `sam deploy -t <out>/template.yaml` uploads exactly what was built and tested.
  manifest.json         per function: handler, archives, sha256, unzipped size (Lambda's limit of 250 MB
                        for code + layers is checked here, not at deploy time).
  llama/                the llama.cpp image's root filesystem, when processors/runtime/package_llama.py
                        is present (built by its `build_llama_rootfs`).

Wheels and installed layers are cached under ~/.cache/sieve (SIEVE_CACHE), keyed by the requirements,
the runtime and the platform, so a repeated build (CI) only zips.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from processors.errors import SieveError

ROOT = Path(__file__).resolve().parents[2]
PLATFORM = "manylinux2014_x86_64"
LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024  # code + all layers, unzipped
#: the CLI is not part of any function (handlers never import it; tests/test_architecture.py)
CODE_EXCLUDE = ("processors/commands/", "processors/cli.py")
#: a fixed timestamp for archive entries, so the same inputs give the same bytes (and sha256)
ZIP_DATE = (2020, 1, 1, 0, 0, 0)


def cache_dir() -> Path:
    return Path(os.environ.get("SIEVE_CACHE") or Path.home() / ".cache" / "sieve")


def runtime_version(runtime: str) -> str:
    m = re.fullmatch(r"python(3\.\d+)", runtime)
    if not m:
        raise SieveError(f"runtime {runtime!r} is not a python3.X Lambda runtime")
    return m.group(1)


def find_python(version: str) -> Path | None:
    """An interpreter of this minor version (the Lambda runtime's): PATH, pyenv, /usr/bin."""
    candidates = [shutil.which(f"python{version}")]
    candidates += sorted(glob.glob(str(Path.home() / f".pyenv/versions/{version}.*/bin/python{version}")), reverse=True)
    candidates += sorted(glob.glob(f"/root/.pyenv/versions/{version}.*/bin/python{version}"), reverse=True)
    candidates += [f"/usr/bin/python{version}", f"/usr/local/bin/python{version}"]
    for c in candidates:
        if not c or not Path(c).exists():
            continue
        try:
            out = subprocess.run([c, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                                 capture_output=True, text=True, timeout=30)
        except OSError:
            continue
        if out.returncode == 0 and out.stdout.strip() == version:
            return Path(c)
    return None


# --------------------------------------------------------------------------- archives


#: layers shipped with the runtime's bytecode (see build_layer)
BYTECODE_LAYERS = ("base",)


def _zip_dir(src: Path, dest: Path, *, prefix: str = "", pyc_tag: str | None = None) -> None:
    """Zip a directory; bytecode only when it is the runtime's (`pyc_tag`, e.g. cpython-312), as
    `compile_for_runtime` writes it."""
    tmp = dest.with_suffix(".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
        for path in sorted(p for p in src.rglob("*") if p.is_file()):
            rel = path.relative_to(src).as_posix()
            if ("__pycache__/" in rel or rel.endswith(".pyc")) and not _runtime_pyc(rel, pyc_tag):
                continue
            _write(zf, prefix + rel, path)
    tmp.replace(dest)


def _runtime_pyc(rel: str, pyc_tag: str | None) -> bool:
    return pyc_tag is not None and "__pycache__/" in rel and rel.endswith(f".{pyc_tag}.pyc")


def pyc_tag(version: str) -> str:
    return "cpython-" + version.replace(".", "")


def compile_for_runtime(root: Path, *, python: Path, version: str, prefix: str) -> str | None:
    """Compile every module under `root` to bytecode with the runtime's CPython (`python` must be that
    minor version: bytecode is version-specific), as `__pycache__/*.cpython-3XY.pyc` with unchecked-hash
    invalidation: Lambda's /var/task and /opt are read-only, so without bytecode in the archive every
    cold start compiles every module it imports from source, and a timestamp-checked .pyc would not
    match the archive's fixed file times. Tracebacks name the files where Lambda unpacks them
    (`prefix`: /var/task or /opt/python). Returns the tag, or None (another Python: no bytecode)."""
    try:
        out = subprocess.run([str(python), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                             capture_output=True, text=True, timeout=30)
    except OSError:
        return None
    if out.returncode != 0 or out.stdout.strip() != version:
        return None
    proc = subprocess.run([str(python), "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash",
                           "-s", str(root), "-p", prefix, str(root)], capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:  # a module that does not compile (a test file of a dependency for another Python)
        bad = [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.strip()][:5]
        if not any(root.rglob(f"*.{pyc_tag(version)}.pyc")):
            raise SieveError(f"compileall failed under {root}: " + " | ".join(bad))
    return pyc_tag(version)


def _write(zf: zipfile.ZipFile, arcname: str, path: Path) -> None:
    info = zipfile.ZipInfo(arcname, ZIP_DATE)
    info.compress_type = zipfile.ZIP_DEFLATED
    mode = path.stat().st_mode & 0o777
    info.external_attr = ((mode | 0o444) & 0o755) << 16  # readable by Lambda's sandbox user, executables stay so
    zf.writestr(info, path.read_bytes())


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _has_pyc(path: Path, tag: str) -> bool:
    with zipfile.ZipFile(path) as zf:
        return any(n.endswith(f".{tag}.pyc") for n in zf.namelist())


def unzipped_size(path: Path) -> int:
    with zipfile.ZipFile(path) as zf:
        return sum(i.file_size for i in zf.infolist())


def code_files(config_path: Path) -> list[tuple[str, Path]]:
    """(archive name, file) of the function code: processors/ without the CLI, the config, its rule files."""
    from processors.config import load

    files: list[tuple[str, Path]] = []
    for path in sorted((ROOT / "processors").rglob("*")):
        rel = path.relative_to(ROOT).as_posix()
        if not path.is_file() or "__pycache__" in rel or rel.endswith(".pyc") or rel.startswith(CODE_EXCLUDE):
            continue
        files.append((rel, path))
    config_path = config_path.resolve()
    try:
        config_rel = config_path.relative_to(ROOT)
    except ValueError:
        raise SieveError(f"{config_path} is outside the repository {ROOT}: the functions read it from the code "
                         "archive at the same relative path") from None
    files.append((config_rel.as_posix(), config_path))
    loaded = load(config_path)
    logs = loaded.config.pipelines.logs
    for spec in (logs.rules if logs is not None else []):
        if isinstance(spec, str):
            rule = (config_path.parent / spec).resolve()
            try:
                files.append((rule.relative_to(ROOT).as_posix(), rule))
            except ValueError:
                raise SieveError(f"rule file {spec} is outside the repository {ROOT}") from None
    return files


def build_code(out: Path, config_path: Path, *, python: Path | None = None, version: str | None = None) -> Path:
    """code.zip: `code_files`, with their bytecode for the runtime when `python` is its CPython."""
    dest = out / "code.zip"
    with tempfile.TemporaryDirectory(prefix="sieve-code-") as d:
        stage = Path(d)
        for arcname, path in code_files(config_path):
            (stage / arcname).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, stage / arcname)
        tag = compile_for_runtime(stage, python=python, version=version, prefix="/var/task") \
            if python is not None and version is not None else None
        _zip_dir(stage, dest, pyc_tag=tag)
    return dest


# --------------------------------------------------------------------------- layers


@dataclass
class LayerBuild:
    name: str
    requirements: list[str]
    zip: Path
    distributions: dict[str, str] = field(default_factory=dict)  # normalised name -> version
    cached: bool = False


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def installed_distributions(site: Path) -> dict[str, str]:
    out = {}
    for info in site.glob("*.dist-info"):
        meta = info / "METADATA"
        if not meta.exists():
            continue
        name = version = None
        for line in meta.read_text(errors="replace").splitlines():
            if line.startswith("Name:") and name is None:
                name = line.split(":", 1)[1].strip()
            elif line.startswith("Version:") and version is None:
                version = line.split(":", 1)[1].strip()
            if not line:
                break
        if name and version:
            out[_norm(name)] = version
    return out


def _remove_distribution(site: Path, dist: str) -> None:
    """Remove an installed distribution from a --target directory by its RECORD."""
    for info in site.glob("*.dist-info"):
        if _norm(info.name.rsplit("-", 1)[0]) != dist:
            continue
        record = info / "RECORD"
        top: set[Path] = set()
        if record.exists():
            for line in record.read_text().splitlines():
                rel = line.split(",", 1)[0]
                if not rel:
                    continue
                p = (site / rel).resolve()
                if site.resolve() in p.parents:
                    top.add(site / Path(rel).parts[0])
                    if p.is_file():
                        p.unlink()
        for t in top:
            if t.is_dir() and not any(f.is_file() for f in t.rglob("*")):
                shutil.rmtree(t, ignore_errors=True)
        shutil.rmtree(info, ignore_errors=True)


def _pip(python: Path, *args: str, log: list[str]) -> subprocess.CompletedProcess:
    cmd = [str(python), "-m", "pip", *args]
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    log.append("$ " + " ".join(cmd) + "\n" + proc.stdout[-4000:] + proc.stderr[-4000:])
    return proc


def install_for_lambda(requirements: list[str], target: Path, *, version: str, python: Path,
                       constraints: Path | None = None, log: list[str] | None = None) -> None:
    """pip install the requirements for Lambda (manylinux x86_64, CPython `version`, binary wheels only)
    into `target`. When that fails because something is published only as a source archive, `pip wheel`
    builds wheels for the whole set into the cache once, and the install is retried with them as a
    find-links source: a pure-Python wheel built so is accepted, one compiled for this machine
    (linux_x86_64) never matches Lambda's platform and the install fails, naming it."""
    log = log if log is not None else []
    wheels = cache_dir() / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    extra = ["--constraint", str(constraints)] if constraints is not None else []
    for attempt in (1, 2):
        if target.exists():
            shutil.rmtree(target)
        proc = _pip(python, "install", "--quiet", "--platform", PLATFORM, "--only-binary=:all:", "--python-version",
                    version, "--implementation", "cp", "--abi", "cp" + version.replace(".", ""), "--target",
                    str(target), "--find-links", str(wheels), "--cache-dir", str(cache_dir() / "pip"),
                    "--no-compile", *extra, *requirements, log=log)
        if proc.returncode == 0:
            return
        if attempt == 2:
            break
        built = _pip(python, "wheel", "--quiet", "--wheel-dir", str(wheels), "--cache-dir", str(cache_dir() / "pip"),
                     *extra, *requirements, log=log)
        if built.returncode != 0:
            break
    raise SieveError(f"pip could not install the layer for Lambda ({PLATFORM}, CPython {version}):\n"
                     + (proc.stdout + proc.stderr)[-3000:])


def build_layer(name: str, requirements: list[str], out: Path, *, version: str, python: Path,
                base: LayerBuild | None = None, log: list[str] | None = None) -> LayerBuild:
    """One layer: python/<packages> zipped, cached by (requirements, base versions, runtime, platform)."""
    key_src = json.dumps({"requirements": requirements, "base": base.distributions if base else None,
                          "version": version, "platform": PLATFORM, "format": 3,
                          "python": str(python), "bytecode": name in BYTECODE_LAYERS}, sort_keys=True)  # 3: with the runtime's bytecode
    key = hashlib.sha256(key_src.encode()).hexdigest()[:20]
    cached_dir = cache_dir() / "layers" / f"{name}-{key}"
    cached_zip = cached_dir / "layer.zip"
    dest = out / f"layer-{name}.zip"
    hit = cached_zip.exists() and (cached_dir / "distributions.json").exists()
    if not hit:
        work = cached_dir / "build"
        site = work / "python"
        constraints = None
        if base is not None:
            constraints = work.parent / "constraints.txt"
            cached_dir.mkdir(parents=True, exist_ok=True)
            constraints.write_text("".join(f"{n}=={v}\n" for n, v in sorted(base.distributions.items())))
        install_for_lambda(requirements, site, version=version, python=python, constraints=constraints, log=log)
        if base is not None:  # what the base layer ships is not shipped twice (Lambda merges /opt/python)
            for dist in installed_distributions(site):
                if dist in base.distributions:
                    _remove_distribution(site, dist)
        shutil.rmtree(site / "bin", ignore_errors=True)  # console scripts: not importable, not needed
        (cached_dir / "distributions.json").write_text(json.dumps(installed_distributions(site), sort_keys=True))
        # bytecode for the base layer (every function's: the log path's cold start); the FAQ layers are left
        # as source, their functions already unzip to ~200 of Lambda's 250 MB and bytecode adds ~20%
        tag = compile_for_runtime(site, python=python, version=version, prefix="/opt/python") \
            if name in BYTECODE_LAYERS else None
        _zip_dir(work, cached_zip, pyc_tag=tag)
        shutil.rmtree(work)
        for old in cached_dir.parent.glob(f"{name}-*"):  # earlier builds of this layer: superseded
            if old != cached_dir and old.is_dir():
                shutil.rmtree(old, ignore_errors=True)
    shutil.copyfile(cached_zip, dest)
    dists = json.loads((cached_dir / "distributions.json").read_text())
    if base is not None:
        dists = {**base.distributions, **dists}
    return LayerBuild(name, requirements, dest, dists, cached=hit)


# --------------------------------------------------------------------------- the whole package


def packaged_template(template_text: str, code_zip: str, layer_zips: dict[str, str]) -> str:
    """The SAM template with every CodeUri / layer ContentUri pointing at the built archives."""
    from processors.runtime.sam import LAYERS, _Dumper

    head = template_text.split("AWSTemplateFormatVersion", 1)[0]
    doc = yaml.safe_load(template_text)
    ids = {lid: name for name, (lid, _g) in LAYERS.items()}
    for lid, res in doc["Resources"].items():
        props = res.get("Properties", {})
        if res["Type"] == "AWS::Serverless::Function" and "CodeUri" in props:
            props["CodeUri"] = code_zip
        elif res["Type"] == "AWS::Serverless::LayerVersion" and lid in ids:
            props["ContentUri"] = layer_zips[ids[lid]]
            res.pop("Metadata", None)  # built already: `sam build` must not rebuild it
    head = head.replace("# Generated by `sieve infra sam`", "# Packaged by `sieve package` from the template generated by `sieve infra sam`", 1)
    return head + yaml.dump(doc, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=120, allow_unicode=True)


def template_layers(template: dict) -> dict[str, list[str]]:
    """function logical id -> the layer names (keys of LAYERS) it uses, from a rendered template."""
    from processors.runtime.sam import LAYERS

    names = {lid: name for name, (lid, _g) in LAYERS.items()}
    out = {}
    for lid, res in template["Resources"].items():
        if res["Type"] == "AWS::Serverless::Function" and res["Properties"].get("PackageType") != "Image":
            out[lid] = [names[layer["Ref"]] for layer in res["Properties"].get("Layers", [])]
    return out


def package(out: Path, *, config: str | None = None, llama: bool = False, python: Path | None = None,
            log: list[str] | None = None) -> dict[str, Any]:
    """Build everything into `out` and return the manifest (also written to out/manifest.json)."""
    import tomllib

    from processors.config import load
    from processors.config.models import Config
    from processors.runtime.sam import LAYERS, RUNTIME, render_template

    log = log if log is not None else []
    version = runtime_version(RUNTIME)
    loaded = load(config)
    raw = Config.model_validate(yaml.safe_load(loaded.path.read_text()))
    config_rel = loaded.path.resolve().relative_to(ROOT).as_posix()
    text, notes = render_template(raw, config_path=config_rel)
    template = yaml.safe_load(text)
    used = sorted({layer for layers in template_layers(template).values() for layer in layers},
                  key=list(LAYERS).index)
    python = python or find_python(version) or Path(sys.executable)
    out.mkdir(parents=True, exist_ok=True)
    code = build_code(out, loaded.path, python=python, version=version)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    layers: dict[str, LayerBuild] = {}
    base = build_layer("base", list(project["dependencies"]), out, version=version, python=python, log=log)
    layers["base"] = base
    for name in used:
        if name == "base":
            continue
        group = LAYERS[name][1]
        layers[name] = build_layer(name, list(project["optional-dependencies"][group]), out, version=version,
                                   python=python, base=base, log=log)
    (out / "template.yaml").write_text(packaged_template(text, code.name, {n: lb.zip.name for n, lb in layers.items()}))
    code_size = unzipped_size(code)
    functions = {}
    for lid, names in template_layers(template).items():
        props = template["Resources"][lid]["Properties"]
        size = code_size + sum(unzipped_size(layers[n].zip) for n in names)
        functions[props["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"]] = {
            "logical_id": lid, "handler": props["Handler"], "code": code.name,
            "layers": [layers[n].zip.name for n in names], "unzipped_bytes": size,
            "timeout": props["Timeout"], "memory": props["MemorySize"],
        }
        if size > LAMBDA_UNZIPPED_LIMIT:
            raise SieveError(f"{lid}: code and layers unzip to {size / 2**20:.0f} MB, over Lambda's 250 MB limit")
    manifest: dict[str, Any] = {
        "runtime": RUNTIME, "platform": PLATFORM, "python_used_for_pip": str(python),
        "bytecode": _has_pyc(code, pyc_tag(version)),
        "archives": {p.name: {"sha256": sha256(p), "bytes": p.stat().st_size, "unzipped_bytes": unzipped_size(p)}
                     for p in [code, *(lb.zip for lb in layers.values())]},
        "layers": {n: {"zip": lb.zip.name, "distributions": lb.distributions, "cached": lb.cached}
                   for n, lb in layers.items()},
        "functions": functions, "notes": notes,
    }
    if llama:
        manifest["llama"] = build_llama(out)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))
    return manifest


def build_llama(out: Path) -> dict[str, Any]:
    """The llama.cpp image's root filesystem, by processors/runtime/package_llama.py when it exists."""
    import importlib

    try:
        mod = importlib.import_module("processors.runtime.package_llama")
    except ImportError:
        return {"built": False, "reason": "processors/runtime/package_llama.py is not there (yet)"}
    build = getattr(mod, "build_llama_rootfs", None)
    if build is None:
        return {"built": False, "reason": "processors.runtime.package_llama has no build_llama_rootfs"}
    rootfs = build(out / "llama")
    return {"built": True, "rootfs": str(rootfs)}


# --------------------------------------------------------------------------- the Lambda runtime, locally

#: github.com/aws/aws-lambda-runtime-interface-emulator, cmd/aws-lambda-rie (pinned; the module has no tags
#: the Go proxy serves, so a pseudo-version of its main branch)
RIE_MODULE = "github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie"
RIE_VERSION = "v0.0.0-20261030222936-bef5c4ba774d"
#: the runtime interface client Lambda's Python base images run (installed for the runtime's Python)
AWSLAMBDARIC = "awslambdaric==4.2.2"


def rie_binary(*, build: bool = True) -> Path:
    """The Lambda Runtime Interface Emulator, built once from its Go module into ~/.cache/sieve/bin."""
    dest = cache_dir() / "bin" / f"aws-lambda-rie-{RIE_VERSION}"
    if dest.exists():
        return dest
    if not build:
        raise SieveError(f"{dest} is not built: run `./dev setup` (or sieve package --rie)")
    go = shutil.which("go") or ("/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").exists() else None)
    if go is None:
        raise SieveError("building the Lambda Runtime Interface Emulator needs Go (https://go.dev/dl/)")
    dest.parent.mkdir(parents=True, exist_ok=True)
    gobin = dest.parent / f".gobin-{os.getpid()}"
    env = {**os.environ, "GOBIN": str(gobin), "CGO_ENABLED": "0", "GOFLAGS": "-mod=mod"}
    proc = subprocess.run([go, "install", f"{RIE_MODULE}@{RIE_VERSION}"], env=env, capture_output=True, text=True,
                          timeout=900)
    if proc.returncode != 0:
        raise SieveError(f"go install {RIE_MODULE}@{RIE_VERSION} failed:\n{proc.stderr[-2000:]}")
    (gobin / "aws-lambda-rie").replace(dest)
    shutil.rmtree(gobin, ignore_errors=True)
    return dest


def runtime_client(version: str, python: Path) -> Path:
    """awslambdaric installed for Lambda's platform and this Python into ~/.cache/sieve (a directory that
    plays Lambda's /var/runtime: the runtime's own client, not part of any artifact)."""
    dest = cache_dir() / "runtime" / f"{AWSLAMBDARIC.replace('==', '-')}-cp{version.replace('.', '')}"
    if (dest / "awslambdaric").is_dir():
        return dest
    tmp = dest.with_name(dest.name + f".tmp{os.getpid()}")
    install_for_lambda([AWSLAMBDARIC], tmp, version=version, python=python)
    if dest.exists():
        shutil.rmtree(dest)
    tmp.replace(dest)
    return dest
