#!/usr/bin/env python3
"""The expand/contract check of migrations/NNNN_*.up.sql (migrations/README.md).

A migration runs while the previous release still serves (ft-migrate first,
then the binaries roll). So by default a migration is an *expand*: it may only
add what old binaries ignore. A statement that would break the old binaries is
refused unless the file says, in its leading comment lines,

    -- ft:contract

which means: this release's binaries no longer use what it removes, and the
release before it already stopped using it (a contract ships one release after
its expand). One more mark, in the same leading comments,

    -- ft:widens TABLE.CONSTRAINT

lets an expand replace that CHECK constraint with a wider one, as one
statement, `ALTER TABLE TABLE DROP CONSTRAINT CONSTRAINT, ADD CONSTRAINT
CONSTRAINT CHECK (...)`: the author states that the new check accepts every
row the old one did (a new value of a status, which old binaries never
write). It allows nothing else. Building an index on an existing table without CONCURRENTLY is
refused in every migration: it blocks writes while it builds.

    python3 migrations/lint.py [DIR]     exit 0 when clean, 1 with one line per problem

Migrations numbered below FIRST_CHECKED predate this rule and are skipped
(0001 is the initial schema, 0002 built two small indexes while nothing served).
"""
import re
import sys
from pathlib import Path

FIRST_CHECKED = 3

# (pattern over one statement, what it breaks). Patterns see the statement with
# comments and string literals blanked, upper-cased, whitespace collapsed.
CONTRACT_RULES = [
    (r"\bDROP (TABLE|VIEW|MATERIALIZED VIEW|FUNCTION|TYPE|SCHEMA|SEQUENCE)\b",
     "drops something the old binaries still use"),
    (r"\bDROP COLUMN\b", "drops a column the old binaries still read or write"),
    (r"\bRENAME\b", "renames something the old binaries use under its old name"),
    (r"\bALTER COLUMN \S+ (SET DATA )?TYPE\b",
     "changes a column's type under the old binaries (and rewrites the table under lock)"),
    (r"\bSET NOT NULL\b", "forbids NULLs the old binaries may still write"),
    (r"\bADD (COLUMN )?(IF NOT EXISTS )?\S+ [^,]*\bNOT NULL\b(?![^,]*\bDEFAULT\b)",
     "adds a NOT NULL column without a DEFAULT: the old binaries' INSERTs leave it out"),
    (r"\bADD (CONSTRAINT \S+ )?(CHECK|UNIQUE|FOREIGN KEY|PRIMARY KEY|EXCLUDE)\b",
     "adds a constraint that may refuse writes the old binaries still make"),
]
INDEX = re.compile(r"^CREATE (UNIQUE )?INDEX (?!CONCURRENTLY)(IF NOT EXISTS )?(\S+ )?ON (ONLY )?(\S+)")
ALTER_TABLE = re.compile(r"^ALTER TABLE (IF EXISTS )?(ONLY )?(\S+)")
CREATE_TABLE = re.compile(r"\bCREATE (UNLOGGED )?TABLE (IF NOT EXISTS )?([^\s(]+)")
MARK = re.compile(r"^--\s*ft:contract\s*$", re.M)
WIDENS = re.compile(r"^--\s*ft:widens\s+([a-z0-9_]+)\.([a-z0-9_]+)\s*$", re.M)
WIDENING = re.compile(r"^ALTER TABLE (ONLY )?(\S+) DROP CONSTRAINT (\S+), ADD CONSTRAINT (\S+) CHECK \(")


def blank(sql):
    """Comments and string literals replaced by spaces (newlines kept), so
    offsets and line numbers still point into the file."""
    out, i, n = [], 0, len(sql)
    while i < n:
        if sql.startswith("--", i):
            j = sql.find("\n", i)
            j = n if j < 0 else j
        elif sql.startswith("/*", i):
            j = sql.find("*/", i + 2)
            j = n if j < 0 else j + 2
        elif sql[i] == "'":
            j = i + 1
            while j < n and not (sql[j] == "'" and not sql.startswith("''", j)):
                j += 2 if sql.startswith("''", j) else 1
            j = min(j + 1, n)
        elif sql[i] == "$" and re.match(r"\$\w*\$", sql[i:]):
            tag = re.match(r"\$\w*\$", sql[i:]).group(0)
            j = sql.find(tag, i + len(tag))
            j = n if j < 0 else j + len(tag)
        else:
            out.append(sql[i])
            i += 1
            continue
        out.append("".join(c if c == "\n" else " " for c in sql[i:j]))
        i = j
    return "".join(out)


def leading_comments(sql):
    lines = []
    for line in sql.splitlines():
        if not line.startswith("--"):
            break
        lines.append(line)
    return "\n".join(lines)


def check_ends(s, i):
    """Whether the parenthesis opened just before s[i] closes at the end of s
    (nothing follows the CHECK's condition)."""
    depth = 1
    for j in range(i, len(s)):
        depth += {"(": 1, ")": -1}.get(s[j], 0)
        if depth == 0:
            return s[j + 1:].strip() == ""
    return False


def check_file(path):
    sql = path.read_text()
    text = blank(sql)
    contract = bool(MARK.search(leading_comments(sql)))
    widens = {(t, c) for t, c in WIDENS.findall(leading_comments(sql))}
    created = {m.group(3).lower().strip('"') for m in CREATE_TABLE.finditer(text.upper())}
    problems, start = [], 0
    for stmt in text.split(";"):
        line = text.count("\n", 0, start + len(stmt) - len(stmt.lstrip())) + 1
        start += len(stmt) + 1
        s = " ".join(stmt.upper().split())
        if not s:
            continue
        where = f"{path.name} line {line}"
        m = INDEX.match(s)
        if m and m.group(5).lower().strip('"') not in created:
            problems.append(f"{where}: CREATE INDEX on existing table {m.group(5).lower()} without "
                            "CONCURRENTLY blocks writes while it builds; use CREATE INDEX "
                            "CONCURRENTLY in a migration whose first line is -- ft:no-transaction")
        if contract:
            continue
        m = ALTER_TABLE.match(s)
        if m and m.group(3).lower().strip('"') in created:
            continue                      # a table this migration creates: nothing old uses it
        w = WIDENING.match(s)
        if w and w.group(3) == w.group(4) and check_ends(s, w.end()) and \
                (w.group(2).lower().strip('"'), w.group(3).lower().strip('"')) in widens:
            continue                      # a CHECK replaced by a wider one, as the mark says
        for pattern, why in CONTRACT_RULES:
            if re.search(pattern, s):
                problems.append(f"{where}: {why}; that is a contract step: put it in its own "
                                "migration marked -- ft:contract, one release after the expand")
                break
    return problems


def main(argv):
    d = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parent
    problems = []
    for p in sorted(d.glob("[0-9][0-9][0-9][0-9]_*.up.sql")):
        if int(p.name[:4]) >= FIRST_CHECKED:
            problems += check_file(p)
    for line in problems:
        print(line)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
