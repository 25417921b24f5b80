"""ft-migrate against the real PostgreSQL: every migration applies, rolls back
and re-applies to an identical schema; failures leave nothing behind and name
the file and line; the dirty mark blocks until forced."""
import re
import shutil

import psycopg
import pytest

from conftest import run


def migrate(build_dir, url, *args, migrations_dir=None, check=True):
    cmd = [str(build_dir / "migrations" / "ft-migrate"), "--database-url", url]
    if migrations_dir:
        cmd += ["--dir", str(migrations_dir)]
    return run(cmd + list(args), check=check)


def schema_dump(pg_bindir, url):
    out = run([str(pg_bindir / "pg_dump"), "--schema-only", "--no-owner", "--no-privileges", url]).stdout
    # pg_dump prints a random \restrict token in newer minor releases; drop it.
    return "\n".join(l for l in out.splitlines() if not l.startswith(("\\restrict", "\\unrestrict")))


def tables(url):
    with psycopg.connect(url) as c:
        rows = c.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema='public' ORDER BY 1"
        ).fetchall()
    return [r[0] for r in rows]


EXPECTED_TABLES = {
    "teams", "api_keys", "files", "datasets", "base_models", "jobs", "job_transitions",
    "job_events", "job_metrics", "checkpoints", "artifacts", "model_versions", "endpoints",
    "deployments", "experiments", "judgments", "drift_windows", "webhooks",
    "webhook_deliveries", "audit_log", "idempotency_keys", "schema_migrations",
    # 0005_registry
    "registered_models", "model_aliases", "model_alias_history", "exports", "export_transitions",
    "export_events", "artifact_files",
    # 0006_request_log
    "request_log",
    # 0008_evaluation (experiments, judgments, drift_windows made again)
    "evals", "eval_models", "eval_transitions", "eval_judgments", "eval_events", "experiment_arms", "feedback",
    "experiment_results", "drift_monitors",
    # 0010_replays
    "experiment_replays", "experiment_replay_answers",
}


def test_up_down_up_gives_identical_schema(build_dir, fresh_db, pg_bindir, root):
    n_migrations = len(list((root / "migrations").glob("*.up.sql")))
    out = migrate(build_dir, fresh_db, "up").stdout
    assert f"applied {n_migrations} migration" in out
    assert set(tables(fresh_db)) == EXPECTED_TABLES
    first = schema_dump(pg_bindir, fresh_db)
    assert "CREATE TABLE public.jobs" in first

    out = migrate(build_dir, fresh_db, "down", "all").stdout
    assert f"rolled back {n_migrations} migration" in out
    assert tables(fresh_db) == ["schema_migrations"]
    with psycopg.connect(fresh_db) as c:
        assert c.execute("SELECT count(*) FROM schema_migrations").fetchone()[0] == 0

    migrate(build_dir, fresh_db, "up")
    second = schema_dump(pg_bindir, fresh_db)
    assert first == second

    # Applying again is a no-op.
    assert "applied 0 migrations" in migrate(build_dir, fresh_db, "up").stdout
    status = migrate(build_dir, fresh_db, "status").stdout
    assert re.search(r"0001\s+initial\s+applied", status)


def test_schema_constraints_hold(build_dir, fresh_db):
    """The CHECKs and foreign keys reject what the design says is impossible."""
    migrate(build_dir, fresh_db, "up")
    team = "team-" + "a" * 24
    with psycopg.connect(fresh_db, autocommit=True) as c:
        c.execute("INSERT INTO teams (id, name) VALUES (%s, 'acme')", (team,))
        with pytest.raises(psycopg.errors.CheckViolation):
            c.execute("INSERT INTO teams (id, name) VALUES ('team-bad', 'x')")
        with pytest.raises(psycopg.errors.CheckViolation):
            c.execute(
                "INSERT INTO api_keys (id, team_id, prefix, key_hash, role) "
                "VALUES (%s, %s, 'abcdefgh', decode(repeat('00', 32), 'hex'), 'owner')",
                ("key-" + "b" * 24, team),
            )
        with pytest.raises(psycopg.errors.ForeignKeyViolation):
            c.execute(
                "INSERT INTO files (id, team_id, filename, purpose, bytes, sha256) "
                "VALUES (%s, %s, 'a.jsonl', 'fine-tune', 1, repeat('0', 64))",
                ("file-" + "c" * 24, "team-" + "z" * 24),
            )
        # A job in an unknown status, or running without a lease, is refused.
        c.execute(
            "INSERT INTO files (id, team_id, filename, purpose, bytes, sha256) "
            "VALUES (%s, %s, 'a.jsonl', 'fine-tune', 1, repeat('0', 64))",
            ("file-" + "c" * 24, team),
        )
        c.execute(
            "INSERT INTO base_models (id, name, architecture, parameter_count) "
            "VALUES (%s, 'tiny', 'LlamaForCausalLM', 1000)", ("model-" + "d" * 24,)
        )
        job = ("ftjob-" + "e" * 24, team, "tiny", "model-" + "d" * 24, "file-" + "c" * 24)
        insert = ("INSERT INTO jobs (id, team_id, model, base_model_id, training_file_id, method, seed, status)"
                  " VALUES (%s, %s, %s, %s, %s, 'supervised', 1, %s)")
        with pytest.raises(psycopg.errors.CheckViolation):
            c.execute(insert, job + ("exploded",))
        with pytest.raises(psycopg.errors.CheckViolation):
            c.execute(insert, job + ("running",))
        c.execute(insert, job + ("queued",))
        # Deleting the team removes its rows (no orphans).
        c.execute("DELETE FROM teams WHERE id = %s", (team,))
        assert c.execute("SELECT count(*) FROM jobs").fetchone()[0] == 0


def _copy_migrations(root, tmp_path):
    d = tmp_path / "migrations"
    d.mkdir()
    for f in (root / "migrations").glob("*.sql"):
        shutil.copy(f, d)
    return d


def test_failed_migration_leaves_nothing_and_names_line(build_dir, fresh_db, root, tmp_path, pg_bindir):
    d = _copy_migrations(root, tmp_path)
    (d / "9001_good.up.sql").write_text("CREATE TABLE good_one (x int);\n")
    (d / "9001_good.down.sql").write_text("DROP TABLE good_one;\n")
    (d / "9002_broken.up.sql").write_text(
        "-- a comment line\nCREATE TABLE half_done (x int);\nCREATE TABLE oops (x nosuchtype);\n")
    (d / "9002_broken.down.sql").write_text("DROP TABLE oops;\nDROP TABLE half_done;\n")

    p = migrate(build_dir, fresh_db, "up", migrations_dir=d, check=False)
    assert p.returncode == 1
    assert '9002_broken.up.sql line 3: type "nosuchtype" does not exist' in p.stderr
    names = tables(fresh_db)
    assert "good_one" in names           # earlier migrations stay applied
    assert "half_done" not in names      # the failed one left nothing
    status = migrate(build_dir, fresh_db, "status", migrations_dir=d).stdout
    assert re.search(r"9001\s+good\s+applied", status)
    assert re.search(r"9002\s+broken\s+pending", status)

    # Rolling back just the last applied migration.
    migrate(build_dir, fresh_db, "down", "1", migrations_dir=d)
    assert "good_one" not in tables(fresh_db)
    assert "jobs" in tables(fresh_db)


def test_no_transaction_migration_marks_dirty_until_forced(build_dir, fresh_db, root, tmp_path):
    d = _copy_migrations(root, tmp_path)
    (d / "9001_concurrent.up.sql").write_text(
        "-- ft:no-transaction\nCREATE INDEX CONCURRENTLY jobs_model_idx ON jobs (model);\n"
        "CREATE INDEX CONCURRENTLY broken_idx ON no_such_table (x);\n")
    (d / "9001_concurrent.down.sql").write_text("-- ft:no-transaction\nDROP INDEX CONCURRENTLY jobs_model_idx;\n")
    p = migrate(build_dir, fresh_db, "up", migrations_dir=d, check=False)
    assert p.returncode == 1
    status = migrate(build_dir, fresh_db, "status", migrations_dir=d).stdout
    assert re.search(r"9001\s+concurrent\s+dirty", status)
    blocked = migrate(build_dir, fresh_db, "up", migrations_dir=d, check=False)
    assert blocked.returncode == 1
    assert "is dirty" in blocked.stderr and "ft-migrate force 9001" in blocked.stderr
    migrate(build_dir, fresh_db, "force", "9001", migrations_dir=d)
    status = migrate(build_dir, fresh_db, "status", migrations_dir=d).stdout
    assert re.search(r"9001\s+concurrent\s+applied", status)


def test_bad_migration_folders_are_refused(build_dir, fresh_db, root, tmp_path):
    d = _copy_migrations(root, tmp_path)
    (d / "9001_lonely.up.sql").write_text("SELECT 1;\n")
    p = migrate(build_dir, fresh_db, "up", migrations_dir=d, check=False)
    assert p.returncode == 1 and "9001_lonely has no down file" in p.stderr
    (d / "9001_lonely.up.sql").unlink()
    (d / "bad-name.sql").write_text("SELECT 1;\n")
    p = migrate(build_dir, fresh_db, "up", migrations_dir=d, check=False)
    assert p.returncode == 1 and '"bad-name.sql" is not named' in p.stderr
    assert tables(fresh_db) == []   # refused before touching the database

    # A database ahead of the folder is refused rather than guessed at.
    migrate(build_dir, fresh_db, "up")
    with psycopg.connect(fresh_db, autocommit=True) as c:
        c.execute("INSERT INTO schema_migrations (version, name) VALUES (9999, 'future')")
    p = migrate(build_dir, fresh_db, "up", check=False)
    assert p.returncode == 1 and "9999_future, which is not in" in p.stderr

    p = migrate(build_dir, fresh_db, "sideways", check=False)
    assert p.returncode == 2 and 'unknown command "sideways"' in p.stderr
