"""`tricenter deploy` / `destroy` against a stand-in for the Automation API: refresh and
preview first, nothing applied without --yes or a yes at the prompt, Pulumi's stream on
stderr and one JSON document on stdout, the seed made once in the identity stack only."""
from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from stacks import deploy as d
from stacks.cli import deploy, destroy

SEED = "tricenter:secretSeed"


class FakeStack:
    def __init__(self, config: dict | None = None):
        self.calls: list[str] = []
        self.config = dict(config or {})

    def _stream(self, on_output, what):
        self.calls.append(what)
        on_output(f"pulumi says: {what} in progress\n")

    def refresh(self, on_output):
        self._stream(on_output, "refresh")

    def preview(self, on_output):
        self._stream(on_output, "preview")
        return SimpleNamespace(change_summary={"create": 3, "same": 1})

    def preview_destroy(self, on_output):
        self._stream(on_output, "preview_destroy")
        return SimpleNamespace(change_summary={"delete": 4})

    def up(self, on_output):
        self._stream(on_output, "up")
        return SimpleNamespace(outputs={"runtime": SimpleNamespace(secret=False, value={"a": 1}),
                                        "database_passwords": SimpleNamespace(secret=True,
                                                                              value={"x": "pw"})})

    def destroy(self, on_output):
        self._stream(on_output, "destroy")
        return SimpleNamespace(summary=SimpleNamespace(resource_changes={"delete": 4}))

    def get_all_config(self):
        return self.config

    def set_config(self, key, value):
        self.calls.append(f"set {key}")
        self.config[key] = value


@pytest.fixture()
def fake(monkeypatch, tmp_path):
    stack = FakeStack()
    monkeypatch.setattr(d, "preflight", lambda name: [])
    monkeypatch.setattr(d, "open_stack", lambda name: stack)
    monkeypatch.setenv("TRICENTER_PLANS_DIR", str(tmp_path / "plans"))
    return stack


def runner() -> CliRunner:
    try:
        return CliRunner(mix_stderr=False)
    except TypeError:  # click 8.2 keeps stderr apart already
        return CliRunner()


def test_deploy_without_yes_previews_and_applies_nothing(fake):
    result = runner().invoke(deploy, ["--stack", "guangdong-samecity"])
    assert result.exit_code == 1
    assert fake.calls == ["refresh", "preview"]
    assert "pass --yes" in result.stderr


def test_deploy_with_yes_refreshes_previews_then_applies(fake, tmp_path):
    result = runner().invoke(deploy, ["--stack", "guangdong-samecity", "--yes"])
    assert result.exit_code == 0, result.stderr
    assert fake.calls == ["refresh", "preview", "up"]
    saved = json.loads((tmp_path / "plans" / "outputs" / "guangdong-samecity.json").read_text())
    assert saved["database_passwords"] == "[secret]"


def test_deploy_json_keeps_pulumis_stream_off_stdout(fake):
    result = runner().invoke(deploy, ["--stack", "guangdong-samecity", "--yes", "--json"])
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] and report["applied"] and report["changes"] == {"create": 3, "same": 1}
    assert "pulumi says" in result.stderr and "pulumi says" not in result.stdout


def test_deploy_json_without_yes_is_a_json_error(fake):
    result = runner().invoke(deploy, ["--stack", "guangdong-samecity", "--json"])
    assert result.exit_code == 1
    error = json.loads(result.stdout)
    assert error["ok"] is False and "--yes" in error["error"]
    assert "up" not in fake.calls


def test_deploy_preview_applies_nothing_even_with_yes(fake):
    result = runner().invoke(deploy, ["--stack", "guangdong-samecity", "--preview", "--json"])
    assert result.exit_code == 0
    assert json.loads(result.stdout)["applied"] is False
    assert "up" not in fake.calls


def test_a_failing_engine_is_reported_as_json(fake, monkeypatch):
    def broken(on_output):
        raise RuntimeError("error: 409 Conflict")
    monkeypatch.setattr(fake, "up", broken)
    result = runner().invoke(deploy, ["--stack", "guangdong-samecity", "--yes", "--json"])
    assert result.exit_code == 1
    assert "409 Conflict" in json.loads(result.stdout)["error"]


def test_missing_prerequisites_are_a_json_error_and_nothing_opens(monkeypatch):
    monkeypatch.setattr(d, "preflight", lambda name: [d.Missing("no backend", "export …")])
    monkeypatch.setattr(d, "open_stack", lambda name: pytest.fail("opened a stack"))
    result = runner().invoke(deploy, ["--stack", "guangdong-main", "--yes", "--json"])
    assert result.exit_code == 1
    assert json.loads(result.stdout)["missing"] == [{"what": "no backend", "fix": "export …"}]


def test_the_identity_stack_gets_its_seed_once_and_the_others_none(fake):
    runner().invoke(deploy, ["--stack", "guangdong-samecity", "--preview"])
    assert SEED not in fake.config
    runner().invoke(deploy, ["--stack", "guangdong-main", "--preview"])
    first = fake.config[SEED]
    assert first.secret and len(first.value) == 64
    runner().invoke(deploy, ["--stack", "guangdong-main", "--preview"])
    assert fake.config[SEED] is first


def test_destroy_needs_yes_and_previews_the_deletion(fake):
    refused = runner().invoke(destroy, ["--stack", "guangdong-remote"])
    assert refused.exit_code == 1 and "destroy" not in fake.calls
    done = runner().invoke(destroy, ["--stack", "guangdong-remote", "--yes", "--json"])
    assert done.exit_code == 0
    assert fake.calls[-3:] == ["refresh", "preview_destroy", "destroy"]
    assert json.loads(done.stdout)["destroyed"] is True


def test_the_automation_api_is_pointed_at_a_cli_off_path(monkeypatch, tmp_path):
    from pulumi import automation as auto

    seen = {}

    class Command:
        def __init__(self, root=None, **_):
            seen["root"] = root
    monkeypatch.setattr(auto, "PulumiCommand", Command)
    monkeypatch.setattr(auto, "create_or_select_stack",
                        lambda **kw: seen.setdefault("opts", kw["opts"]) and FakeStack())
    monkeypatch.setattr(d, "install_plugin", lambda target, env: None)
    cli = tmp_path / "pulumi-home" / "bin" / "pulumi"
    d.open_stack("guangdong-main", {"PULUMI_BACKEND_URL": "file:///tmp/x"},
                 which=lambda _: str(cli))
    assert seen["root"] == str(tmp_path / "pulumi-home")
    assert isinstance(seen["opts"].pulumi_command, Command)


@pytest.mark.parametrize("url, problem", [
    ("s3://state?endpoint=10.0.0.5:8080&region=RegionOne", "s3ForcePathStyle"),
    ("s3://state?endpoint=http://10.0.0.5:8080&s3ForcePathStyle=true&region=R", "scheme"),
    ("s3://state?endpoint=10.0.0.5:8080&s3ForcePathStyle=true", "region"),
])
def test_an_s3_backend_url_for_swift_names_what_it_lacks(url, problem):
    assert [m for m in d.backend_problems(url) if problem in m.what + m.fix]


def test_the_documented_backend_url_passes_its_own_check():
    url = d.s3_backend_url("tricenter-state", "10.0.0.5:8080", "RegionOne", tls=False)
    assert "disableSSL=true" in url and d.backend_problems(url) == []


def test_preflight_asks_for_a_plugin_file_when_the_plugin_is_not_installed(tmp_path):
    env = {"HOME": str(tmp_path), "TRICENTER_PULUMI_BACKEND": "file:///tmp/s",
           "PULUMI_CONFIG_PASSPHRASE": "x", "OS_AUTH_URL": "https://k"}
    missing = d.preflight("guangdong-main", env, which=lambda _: "/usr/bin/pulumi")
    assert [m for m in missing if d.PLUGIN_FILE_ENV in m.fix]
    plugin = tmp_path / "plugin.tar.gz"
    plugin.write_bytes(b"x")
    env[d.PLUGIN_FILE_ENV] = str(plugin)
    assert d.preflight("guangdong-main", env, which=lambda _: "/usr/bin/pulumi") == []
