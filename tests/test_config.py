"""Configuration layering, the seed's names, and secrets that never print."""

from pathlib import Path

import pytest

from skillsyncd.config import Secret, load_config
from skillsyncd.errors import ConfigError


def test_precedence_flags_over_env_over_toml(tmp_path: Path) -> None:
    toml = tmp_path / "c.toml"
    toml.write_text('repo = "from-toml"\nref = "toml-ref"\ninterval = 5\n')
    env = {"SKILLSYNC_REF": "env-ref", "SKILLSYNC_CONFIG": str(toml)}
    cfg = load_config(flags={"ref": "flag-ref"}, env=env)
    assert cfg.repo == "from-toml"
    assert cfg.ref == "flag-ref"
    assert cfg.interval == 5.0
    cfg = load_config(env=env)
    assert cfg.ref == "env-ref"


def test_seed_names_accepted(tmp_path: Path) -> None:
    env = {
        "GITHUB_TOKEN": "ghs_example",
        "GITHUB_WEBHOOK_SECRET": "whsec",
        "NEO4J_URI": "bolt://127.0.0.1:7687",
        "NEO4J_USER": "alice",
        "NEO4J_PASSWORD": "pw",
        "POLLING_INTERVAL_MIN": "2",
        "MAX_SKILL_SIZE_BYTES": "5000",
    }
    cfg = load_config(env=env)
    assert cfg.token.get() == "ghs_example"
    assert cfg.webhook_secret.get() == "whsec"
    assert cfg.neo4j_uri == "bolt://127.0.0.1:7687" and cfg.neo4j_user == "alice"
    assert cfg.neo4j_password.get() == "pw"
    assert cfg.interval == 120.0
    assert cfg.max_skill_md_bytes == 5000


def test_skillsync_token_beats_github_token() -> None:
    cfg = load_config(env={"SKILLSYNC_TOKEN": "a", "GITHUB_TOKEN": "b"})
    assert cfg.token.get() == "a"


def test_secret_file_is_reread_for_rotation(tmp_path: Path) -> None:
    f = tmp_path / "token"
    f.write_text("first\n")
    cfg = load_config(env={"GITHUB_TOKEN_FILE": str(f)})
    assert cfg.token.get() == "first"
    f.write_text("second\n")
    assert cfg.token.get() == "second"


def test_secrets_never_in_repr() -> None:
    cfg = load_config(env={"GITHUB_TOKEN": "ghp_supersecretvalue", "NEO4J_PASSWORD": "hunter2"})
    text = repr(cfg) + str(cfg.token)
    assert "ghp_supersecretvalue" not in text and "hunter2" not in text
    assert "redacted" in text


def test_missing_secret_file_is_config_error(tmp_path: Path) -> None:
    cfg = load_config(env={"GITHUB_TOKEN_FILE": str(tmp_path / "nope")})
    with pytest.raises(ConfigError, match="cannot read secret file"):
        cfg.token.get()


def test_missing_repo_is_a_one_line_config_error() -> None:
    cfg = load_config(env={})
    with pytest.raises(ConfigError, match="SKILLSYNC_REPO"):
        cfg.require_repo()


@pytest.mark.parametrize(
    ("env", "match"),
    [
        ({"SKILLSYNC_INTERVAL": "soon"}, "interval"),
        ({"SKILLSYNC_ON_INVALID": "ignore"}, "on_invalid"),
        ({"SKILLSYNC_PUBLISH_MODE": "mirror"}, "PUBLISH_DIR"),
        ({"SKILLSYNC_STATE_DIR": "/home/x/.cache/skills"}, "watcher ignores"),
        ({"SKILLSYNC_SKILLS_PATH": "../outside"}, "relative path"),
        ({"SKILLSYNC_KEEP_RELEASES": "1"}, "keep_releases"),
        ({"POLLING_INTERVAL_MIN": "often"}, "POLLING_INTERVAL_MIN"),
        # one setting named, with its value and where it is set (the message named three)
        ({"SKILLSYNC_INTERVAL": "-5"},
         r"^interval must be greater than 0, not -5 \(set by SKILLSYNC_INTERVAL\)$"),
        ({"SKILLSYNC_NETWORK_TIMEOUT": "0"}, r"^network_timeout must be greater than 0, not 0 "),
        ({"SKILLSYNC_LOCK_TIMEOUT": "-1"}, r"^lock_timeout must be at least 0, not -1 "),
        ({"SKILLSYNC_HTTP_MAX_CONNECTIONS": "2"}, r"^http_max_connections must be at least 4, not 2 "),
    ],
)
def test_bad_values_are_config_errors(env: dict[str, str], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        load_config(env=env)


@pytest.mark.parametrize(
    ("where", "value", "line"),
    [
        ("flag", "abc", "interval 'abc' is not a number (set by --interval)"),
        ("flag", "-5", "interval must be greater than 0, not -5 (set by --interval)"),
        ("env", "abc", "interval 'abc' is not a number (set by SKILLSYNC_INTERVAL)"),
        ("env", "-5", "interval must be greater than 0, not -5 (set by SKILLSYNC_INTERVAL)"),
        ("file", "abc", "interval 'abc' is not a number (set by interval in {file})"),
        ("file", "-5", "interval must be greater than 0, not -5 (set by interval in {file})"),
    ],
)
def test_a_bad_value_names_the_setting_its_source_and_the_value(
        tmp_path: Path, where: str, value: str, line: str) -> None:
    """Where it WAS set, not the three places it could be (issue 29 item 12)."""
    conf = tmp_path / "c.toml"
    conf.write_text(f'interval = "{value}"\n' if where == "file" else "")
    with pytest.raises(ConfigError) as bad:
        load_config(flags={"interval": value} if where == "flag" else {},
                    env={"SKILLSYNC_INTERVAL": value} if where == "env" else {}, config_file=conf)
    assert str(bad.value) == line.format(file=conf)


def test_the_source_named_is_the_one_that_won(tmp_path: Path) -> None:
    conf = tmp_path / "c.toml"
    conf.write_text("keep_releases = 9\nskill_depth = 0\n")
    with pytest.raises(ConfigError, match=r"not 1 \(set by SKILLSYNC_KEEP_RELEASES\)$"):
        load_config(env={"SKILLSYNC_KEEP_RELEASES": "1", "SKILLSYNC_SKILL_DEPTH": "2"},
                    config_file=conf)
    with pytest.raises(ConfigError, match=rf"not 0 \(set by skill_depth in {conf}\)$"):
        load_config(env={}, config_file=conf)
    with pytest.raises(ConfigError, match=r"not -60 \(set by POLLING_INTERVAL_MIN\)$"):
        load_config(env={"POLLING_INTERVAL_MIN": "-1"})
    with pytest.raises(ConfigError, match=r"^strict 'maybe' is not a boolean .*SKILLSYNC_STRICT\)$"):
        load_config(env={"SKILLSYNC_STRICT": "maybe"})


def test_toml_unknown_key_and_bad_syntax(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("repo = 'x'\nrepoo = 'y'\n")
    with pytest.raises(ConfigError, match="repoo"):
        load_config(env={}, config_file=bad)
    bad.write_text("repo = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(env={}, config_file=bad)


def test_toml_secret_file_key(tmp_path: Path) -> None:
    (tmp_path / "t").write_text("tok")
    conf = tmp_path / "c.toml"
    conf.write_text(f'token_file = "{tmp_path / "t"}"\nrequired_fields = ["name", "version"]\n')
    cfg = load_config(env={}, config_file=conf)
    assert cfg.token == Secret(file=tmp_path / "t")
    assert cfg.required_fields == ("name", "version")


def test_skills_path_normalised() -> None:
    assert load_config(env={"SKILLSYNC_SKILLS_PATH": "/skills/"}).skills_path == "skills"


# --- warnings about the environment (issue 15) ---------------------------------------


def test_seed_and_skillsync_names_that_differ_give_one_note_naming_the_winner() -> None:
    from skillsyncd.env_notes import env_notes

    env = {"SKILLSYNC_TOKEN": "ghp_firstsecretvalue", "GITHUB_TOKEN": "ghp_othersecretvalue",
           "SKILLSYNC_INTERVAL": "30", "POLLING_INTERVAL_MIN": "2",
           "SKILLSYNC_MAX_SKILL_MD_BYTES": "100", "MAX_SKILL_SIZE_BYTES": "100"}  # equal: quiet
    notes = env_notes(env)
    assert [(n.event, n.variable, n.ignored) for n in notes] == [
        ("env_conflict", "SKILLSYNC_TOKEN", ("GITHUB_TOKEN",)),
        ("env_conflict", "SKILLSYNC_INTERVAL", ("POLLING_INTERVAL_MIN",)),
    ]
    assert "SKILLSYNC_TOKEN wins" in notes[0].message
    text = repr(notes) + repr([n.fields() for n in notes])
    assert "secretvalue" not in text, "a warning names variables, never values"
    assert env_notes({"SKILLSYNC_INTERVAL": "120", "POLLING_INTERVAL_MIN": "2"}) == []
    assert load_config(env=env).token.get() == "ghp_firstsecretvalue"


def test_a_misspelled_variable_is_named_with_the_closest_real_one() -> None:
    from skillsyncd.env_notes import env_notes

    notes = env_notes({"SKILLSYNC_INTERVALL": "5", "SKILLSYNC_WEBHOOK_SECRT": "x",
                       "SKILLSYNC_USER": "moltbot", "SKILLSYNC_RELEASE": "r1"})
    assert [(n.variable, n.suggestion) for n in notes] == [
        ("SKILLSYNC_INTERVALL", "SKILLSYNC_INTERVAL"),
        ("SKILLSYNC_WEBHOOK_SECRT", "SKILLSYNC_WEBHOOK_SECRET"),
    ]
    assert "did you mean SKILLSYNC_INTERVAL?" in notes[0].message


def test_the_cli_logs_each_note_once_as_a_warning(tmp_path: Path) -> None:
    import json
    import os
    import subprocess
    import sys

    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("SKILLSYNC_", "GITHUB_", "POLLING_", "NEO4J_", "MAX_SKILL"))}
    env = {**clean, "SKILLSYNC_STATE_DIR": str(tmp_path), "SKILLSYNC_REFF": "x",
           "SKILLSYNC_TOKEN": "ghp_one_secret_value", "GITHUB_TOKEN": "ghp_two_secret_value"}
    done = subprocess.run([str(Path(sys.executable).parent / "skillsyncd"), "status", "--json"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(ln) for ln in done.stderr.splitlines() if ln.startswith("{")]
    warned = [(e["event"], e["variable"]) for e in lines if e["level"] == "warning"]
    assert warned == [("env_conflict", "SKILLSYNC_TOKEN"), ("env_unknown", "SKILLSYNC_REFF")]
    assert "secret_value" not in done.stderr + done.stdout
