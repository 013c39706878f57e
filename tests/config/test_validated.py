"""The validated-config cache: a config loaded again is the same config, built without yangson,
and nothing but a document that validated, in this very environment, is ever taken from it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from probe.config import load, validated, yang_check
from probe.errors import UserError
from tests.config.helpers import REPO, SAMPLES, sample, write


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "cache"
    monkeypatch.setenv(validated.ENV, str(d))
    return d / "configs"


def _no_yangson(monkeypatch: pytest.MonkeyPatch) -> None:
    """From here on, validating with yangson fails the test."""
    def refuse(doc: object) -> list[tuple[str, str]]:
        raise AssertionError("validated with yangson again")
    monkeypatch.setattr(yang_check, "validate", refuse)


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
@pytest.mark.parametrize("replay", [False, True])
def test_a_config_read_back_is_the_config_validated(path: Path, replay: bool, cache_dir: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    full = load(path, replay=replay, cache="off")
    assert not cache_dir.exists()
    assert load(path, replay=replay) == full  # validated, and kept
    assert len(list(cache_dir.glob("*.json"))) == 1
    _no_yangson(monkeypatch)
    assert load(path, replay=replay) == full  # read back


def test_a_changed_document_is_validated_again(tmp_path: Path, cache_dir: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    doc = sample("ipfix-udp.json")
    path = write(tmp_path, doc)
    load(path)
    calls = []
    real = yang_check.validate
    monkeypatch.setattr(yang_check, "validate", lambda d: calls.append(1) or real(d))
    load(path)
    assert calls == []
    doc["cache"][0]["timeoutCache"]["maxFlows"] = 1234
    path.write_text(json.dumps(doc))
    assert load(path).caches[0].max_flows == 1234
    assert calls == [1]
    assert load(path, replay=True) and calls == [1, 1]  # replay's rules: an entry of its own


def test_an_invalid_document_is_never_kept(tmp_path: Path, cache_dir: Path) -> None:
    doc = sample("ipfix-udp.json")
    doc["cache"][0]["timeoutCache"]["maxFlows"] = -1
    path = write(tmp_path, doc)
    for _ in range(2):
        with pytest.raises(UserError, match="maxFlows"):
            load(path)
    assert not list(cache_dir.glob("*.json"))


def test_an_edited_entry_still_meets_the_semantic_checks(tmp_path: Path, cache_dir: Path) -> None:
    path = write(tmp_path, sample("ipfix-udp.json"))
    load(path)
    (entry,) = cache_dir.glob("*.json")
    known = json.loads(entry.read_text())
    text = json.dumps(known)
    assert '"ietf-ipfix-psamp:ipfix"' in text
    # a cache that exports an IE twice: the semantic checks refuse it, cached or not
    cache = known["ietf-ipfix-psamp:ipfix"]["cache"][0]
    fields = next(v for v in cache.values() if isinstance(v, dict))["cacheLayout"]["cacheField"]
    fields.append(dict(fields[-1], name="again"))
    entry.write_text(json.dumps(known))
    with pytest.raises(UserError):
        load(path)


def test_a_directory_others_can_write_is_not_used(tmp_path: Path, cache_dir: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, sample("ipfix-udp.json"))
    load(path)
    os.chmod(cache_dir, 0o777)
    calls = []
    real = yang_check.validate
    monkeypatch.setattr(yang_check, "validate", lambda d: calls.append(1) or real(d))
    load(path)
    assert calls == [1]
    os.chmod(cache_dir, 0o700)
    load(path)
    assert calls == [1]


@pytest.mark.parametrize("value", ["off", ""])
def test_off_means_no_cache(value: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(validated.ENV, value)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    load(SAMPLES[0])
    assert not list(tmp_path.rglob("*.json"))


def test_where_it_lives_without_the_variable(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(validated.ENV)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert validated.cache_dir() == tmp_path / "home/.cache/flowprobe/configs"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert validated.cache_dir() == tmp_path / "xdg/flowprobe/configs"


def test_the_least_recently_used_entries_go_first(tmp_path: Path, cache_dir: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(validated, "MAX_ENTRIES", 3)
    doc = sample("ipfix-udp.json")
    paths = []
    for n in range(5):
        doc["cache"][0]["timeoutCache"]["maxFlows"] = 1000 + n
        paths.append(write(tmp_path, doc, f"cfg{n}.json"))
        load(paths[-1])
        entries = list(cache_dir.glob("*.json"))
        for i, e in enumerate(sorted(entries, key=lambda e: e.stat().st_mtime_ns)):
            os.utime(e, ns=(i * 10**9, i * 10**9))  # mtimes apart, in order of use
    assert len(list(cache_dir.glob("*.json"))) == 3
    _no_yangson(monkeypatch)
    for p in paths[2:]:
        load(p)  # the three most recent are kept
    with pytest.raises(AssertionError, match="yangson again"):
        load(paths[0])


def test_validate_refreshes_and_run_reads_back(tmp_path: Path, cache_dir: Path) -> None:
    """As a user runs it: `validate` checks in full and keeps the outcome for `replay -c`."""
    cfg = REPO / "configs" / "ipfix-udp.json"
    env = dict(os.environ, **{validated.ENV: str(cache_dir.parent)})
    out = subprocess.run([sys.executable, "-m", "probe", "validate", str(cfg)], cwd=REPO,
                         env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert len(list(cache_dir.glob("*.json"))) == 1
    out = subprocess.run([sys.executable, "-m", "probe", "replay", "pcaps/demo.pcap", "-c",
                          str(cfg), "--export", "udp://127.0.0.1:9", "-q"], cwd=REPO, env=env,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    # replay's rules differ (no offline file needed): an entry of its own beside validate's
    assert len(list(cache_dir.glob("*.json"))) == 2


def test_the_digest_follows_the_code_the_modules_and_the_libraries(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What validation depends on is in the digest: a changed builder or YANG module on disk,
    or another yangson release, and every entry is missed."""
    code = tmp_path / "code"
    code.mkdir()
    (code / "build.py").write_text("x = 1\n")
    (code / "flowprobe.yang").write_text("module flowprobe {}\n")
    monkeypatch.setattr(validated, "_CODE_DIRS", (code,))
    digests = []

    def digest() -> bytes:
        validated._environment_digest.cache_clear()
        digests.append(validated._environment_digest())
        return digests[-1]

    digest()
    (code / "build.py").write_text("x = 2\n")
    digest()
    (code / "flowprobe.yang").write_text("module flowprobe { }\n")
    digest()
    (code / "notes.txt").write_text("not code")  # neither .py, .yang nor .json
    digest()
    monkeypatch.setattr(validated, "_LIBRARIES", ("yangson", "pydantic"))
    digest()
    validated._environment_digest.cache_clear()
    assert len(set(digests)) == 4 and digests[2] == digests[3]


def test_a_cache_that_cannot_be_written_costs_time_not_the_load(
        tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, sample("ipfix-udp.json"))

    def full_disk(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(validated.os, "replace", full_disk)
    assert load(path) == load(path, cache="off")
    assert list(cache_dir.iterdir()) == []  # nothing kept, no half-written file left


def test_code_that_cannot_be_read_means_no_cache(tmp_path: Path, cache_dir: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(validated, "_CODE_DIRS", (tmp_path / "gone",))
    validated._environment_digest.cache_clear()
    try:
        assert load(SAMPLES[0]) == load(SAMPLES[0], cache="off")
        assert not cache_dir.exists()
    finally:
        validated._environment_digest.cache_clear()
