"""A Kaggle competition slug as input: its files fetched once with the official Kaggle API into a local
competition folder (``<cache>/kaggle/<slug>/public/``), which is then read like any other folder."""

from __future__ import annotations

import os
import re
import shutil
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from medalist.errors import InputError
from medalist.workspace import user_cache_dir

_SLUG = re.compile(r"^(?:kaggle:)?([a-z0-9][a-z0-9-]{1,99})$")


def kaggle_slug(arg: str) -> str | None:
    """The competition slug when ``arg`` reads as one (``titanic``, ``kaggle:titanic``), else None."""
    match = _SLUG.match(str(arg).strip())
    return match.group(1) if match else None


def has_credentials(env: Mapping[str, str] | None = None, home: Path | None = None) -> bool:
    """Whether the Kaggle API can authenticate: KAGGLE_USERNAME + KAGGLE_KEY, KAGGLE_API_TOKEN, or a
    kaggle.json / access_token file in $KAGGLE_CONFIG_DIR, ~/.kaggle or ~/.config/kaggle."""
    env = os.environ if env is None else env
    if (env.get("KAGGLE_USERNAME") and env.get("KAGGLE_KEY")) or env.get("KAGGLE_API_TOKEN"):
        return True
    home = Path.home() if home is None else home
    dirs = [Path(env["KAGGLE_CONFIG_DIR"])] if env.get("KAGGLE_CONFIG_DIR") else []
    dirs += [home / ".kaggle", home / ".config" / "kaggle"]
    return any((d / name).is_file() for d in dirs for name in ("kaggle.json", "access_token"))


def kaggle_cache_dir() -> Path:
    return user_cache_dir() / "kaggle"


def fetch_competition(slug: str, cache_dir: Path | None = None, api: Any | None = None) -> Path:
    """The local ``public/`` folder of Kaggle competition ``slug``, downloaded on first use.

    ``api`` is a Kaggle API object (``competition_download_files``, optionally ``competitions_list``);
    by default the official client, authenticated from the user's credentials. A download that stops
    half way leaves nothing behind: files land in a scratch folder that is renamed when complete."""
    target = (cache_dir or kaggle_cache_dir()) / slug / "public"
    if target.is_dir() and any(target.iterdir()):
        return target
    api = api if api is not None else _official_api(slug)
    scratch = target.parent / f".download-{os.getpid()}"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    try:
        try:
            api.competition_download_files(slug, path=str(scratch), quiet=True)
        except Exception as exc:  # the client raises its own HTTP error types
            raise InputError(_download_error(slug, exc)) from exc
        public = scratch / "public"
        public.mkdir()
        for item in sorted(scratch.iterdir()):
            if item == public:
                continue
            if item.suffix.lower() == ".zip":
                _extract(item, public)
                item.unlink()
            else:
                item.rename(public / item.name)
        if not any(public.iterdir()):
            raise InputError(f"Kaggle returned no files for competition {slug!r}")
        if not any(p.stem.lower() in ("description", "readme") for p in public.iterdir()):
            (public / "description.md").write_text(_describe(api, slug), encoding="utf-8")
        shutil.rmtree(target, ignore_errors=True)
        public.rename(target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


def _official_api(slug: str) -> Any:
    if not has_credentials():
        raise InputError(
            f"{slug!r} is not a folder here, and fetching it from Kaggle needs an API token: put kaggle.json in "
            "~/.kaggle/ (kaggle.com → Settings → API) or set KAGGLE_USERNAME and KAGGLE_KEY"
        )
    try:
        from kaggle.api.kaggle_api_extended import KaggleApi
    except ImportError as exc:
        raise InputError(
            f"fetching {slug!r} from Kaggle needs the official client: pip install kaggle"
        ) from exc
    api = KaggleApi()
    try:
        api.authenticate()
    except Exception as exc:
        raise InputError(f"Kaggle refused the API credentials: {' '.join(str(exc).split())[:160]}") from exc
    return api


def _download_error(slug: str, exc: Exception) -> str:
    text = " ".join(str(exc).split())[:160]
    if "403" in text:
        return f"Kaggle refused the download of {slug!r}: accept the rules at https://www.kaggle.com/c/{slug}/rules"
    if "404" in text:
        return f"no Kaggle competition is named {slug!r} (check the slug in its URL)"
    return f"could not download Kaggle competition {slug!r}: {text}"


def _extract(archive: Path, into: Path) -> None:
    """Unzip ``archive`` into ``into``, refusing members that would land outside it."""
    root = into.resolve()
    try:
        with zipfile.ZipFile(archive) as zf:
            for member in zf.infolist():
                dest = (root / member.filename).resolve()
                if not dest.is_relative_to(root):
                    raise InputError(f"{archive.name}: member {member.filename!r} points outside the folder")
            zf.extractall(root)
    except zipfile.BadZipFile as exc:
        raise InputError(f"the Kaggle download {archive.name} is not a readable zip") from exc


def _describe(api: Any, slug: str) -> str:
    """A short description.md from the competition listing (title, description, evaluation metric)."""
    lines = [f"# {slug}"]
    try:
        listed = api.competitions_list(search=slug)
    except Exception:
        return "\n".join(lines) + "\n"
    for comp in getattr(listed, "competitions", listed) or []:
        ref = str(getattr(comp, "ref", ""))
        if ref.rstrip("/").split("/")[-1] != slug:
            continue
        title = getattr(comp, "title", "") or slug
        lines = [f"# {title}", "", str(getattr(comp, "description", "") or "")]
        metric = getattr(comp, "evaluation_metric", None) or getattr(comp, "evaluationMetric", None)
        if metric:
            lines += ["", "## Evaluation", "", f"Submissions are evaluated on {metric}."]
        break
    return "\n".join(lines).strip() + "\n"
