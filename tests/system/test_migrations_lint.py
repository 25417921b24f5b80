"""migrations/lint.py, the expand/contract check: the project's migrations pass;
each kind of breaking statement is refused in an expand migration with its
file and line, and allowed once the file is marked -- ft:contract; an index
built on an existing table without CONCURRENTLY is refused in both; what a
migration does to a table it creates itself is not a contract; comments and
string literals do not trigger it; a CHECK replaced by a wider one passes
only under its -- ft:widens mark, and only as that one statement."""
import subprocess
import sys

import pytest


def lint(root, d):
    return subprocess.run([sys.executable, str(root / "migrations/lint.py"), str(d)],
                          capture_output=True, text=True, timeout=60)


def test_project_migrations_pass(root):
    p = lint(root, root / "migrations")
    assert p.returncode == 0, p.stdout + p.stderr


BREAKING = [
    ("ALTER TABLE jobs DROP COLUMN seed;", "drops a column"),
    ("DROP TABLE judgments;", "drops something"),
    ("ALTER TABLE files RENAME COLUMN filename TO name;", "renames"),
    ("ALTER TABLE jobs RENAME TO fine_tuning_jobs;", "renames"),
    ("ALTER TABLE jobs ALTER COLUMN seed TYPE text;", "changes a column's type"),
    ("ALTER TABLE jobs ALTER COLUMN seed SET NOT NULL;", "forbids NULLs"),
    ("ALTER TABLE jobs ADD COLUMN priority int NOT NULL;", "without a DEFAULT"),
    ("ALTER TABLE jobs ADD CONSTRAINT seed_pos CHECK (seed >= 0);", "adds a constraint"),
]


@pytest.mark.parametrize("stmt,why", BREAKING)
def test_breaking_statement_needs_the_contract_mark(root, tmp_path, stmt, why):
    (tmp_path / "0003_change.up.sql").write_text(f"-- 0003_change: a test\nSELECT 1;\n{stmt}\n")
    p = lint(root, tmp_path)
    assert p.returncode == 1
    assert p.stdout.startswith("0003_change.up.sql line 3: ") and why in p.stdout, p.stdout
    (tmp_path / "0003_change.up.sql").write_text(f"-- 0003_change: a test\n-- ft:contract\n{stmt}\n")
    assert lint(root, tmp_path).returncode == 0


EXPAND_OK = """-- 0004_expand: only additions
ALTER TABLE jobs ADD COLUMN priority int;
ALTER TABLE jobs ADD COLUMN region text NOT NULL DEFAULT 'any';
CREATE TABLE tags (id text PRIMARY KEY, name text NOT NULL);
ALTER TABLE tags ADD CONSTRAINT tags_name CHECK (name <> ''), ALTER COLUMN name SET NOT NULL;
CREATE INDEX tags_name_idx ON tags (name);
-- DROP TABLE jobs; in a comment
INSERT INTO tags VALUES ('t', 'DROP COLUMN in a string');
"""


def test_additions_and_new_tables_pass(root, tmp_path):
    (tmp_path / "0004_expand.up.sql").write_text(EXPAND_OK)
    p = lint(root, tmp_path)
    assert p.returncode == 0, p.stdout


def test_blocking_index_refused_even_in_a_contract(root, tmp_path):
    (tmp_path / "0005_idx.up.sql").write_text("-- ft:contract\nCREATE INDEX jobs_seed_idx ON jobs (seed);\n")
    p = lint(root, tmp_path)
    assert p.returncode == 1 and "without CONCURRENTLY" in p.stdout and "line 2" in p.stdout
    (tmp_path / "0005_idx.up.sql").write_text(
        "-- ft:no-transaction\nCREATE INDEX CONCURRENTLY jobs_seed_idx ON jobs (seed);\n")
    assert lint(root, tmp_path).returncode == 0


WIDEN = ("ALTER TABLE jobs DROP CONSTRAINT jobs_status_check, ADD CONSTRAINT jobs_status_check"
         " CHECK (status IN ('queued', 'paused'))")


@pytest.mark.parametrize("mark,stmt,ok", [
    ("-- ft:widens jobs.jobs_status_check", WIDEN, True),
    ("", WIDEN, False),                                                # no mark
    ("-- ft:widens jobs.jobs_seed_check", WIDEN, False),               # another constraint
    ("-- ft:widens files.jobs_status_check", WIDEN, False),            # another table
    ("-- ft:widens jobs.jobs_status_check", WIDEN + ", DROP COLUMN seed", False),  # more than that
    ("-- ft:widens jobs.jobs_status_check",
     "ALTER TABLE jobs DROP CONSTRAINT a, ADD CONSTRAINT jobs_status_check CHECK (seed > 0)", False),
])
def test_a_widened_check_passes_only_under_its_mark(root, tmp_path, mark, stmt, ok):
    (tmp_path / "0011_widen.up.sql").write_text(f"-- 0011_widen: a test\n{mark}\n{stmt};\n")
    p = lint(root, tmp_path)
    assert p.returncode == (0 if ok else 1), p.stdout
    if not ok:
        assert "0011_widen.up.sql line 3: " in p.stdout
