"""The service's own SQL (the sql/ files), run outside the service: as the pgbench scripts of
the database ceilings, and PREPAREd as the service prepares it, to show the plans."""

from __future__ import annotations

import re
from pathlib import Path

from common import ROOT
from dataset import Dataset, Pg


def strip_sql(text: str, names: dict[int, str] | None) -> str:
    """The statement of an sql/ file on one line: comments dropped, whitespace collapsed, and
    (when `names` is given) each $n turned into the pgbench variable :name. String literals are
    copied untouched."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if c == "'":
            j = i + 1
            while True:
                j = text.index("'", j)
                if j + 1 < n and text[j + 1] == "'":
                    j += 2
                    continue
                break
            out.append(text[i:j + 1])
            i = j + 1
        elif text.startswith("--", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif c == "$" and names is not None and i + 1 < n and text[i + 1].isdigit():
            m = re.match(r"\$(\d+)", text[i:])
            out.append(":" + names[int(m.group(1))])
            i += len(m.group(0))
        else:
            out.append(c)
            i += 1
    return " ".join("".join(out).split())


LIST_VARS = {1: "pid", 2: "sort", 3: "count", 4: "page", 5: "offset"}
POST_VARS = {1: "pid", 2: "rating", 3: "summary", 4: "body", 5: "recommend", 6: "name",
             7: "email", 8: "photos", 9: "cids", 10: "cvals"}


def pgbench_scripts(ds: Dataset, workdir: Path) -> dict[str, Path]:
    """Writes the pgbench scripts of this dataset; returns their paths by name."""
    sql = {f: (ROOT / "sql" / f"{f}.sql").read_text() for f in ("list", "meta", "post_review", "helpful", "report")}
    list_stmt = strip_sql(sql["list"], LIST_VARS) + ";\n"
    meta_stmt = strip_sql(sql["meta"], {1: "pid"}) + ";\n"
    rlo, rhi = ds.review_range
    scripts = {}
    for ids in ("last10", "original"):
        lo, hi = ds.ranges[ids]
        scripts[f"list-{ids}"] = f"\\set pid random({lo}, {hi})\n" + list_stmt
        scripts[f"meta-{ids}"] = f"\\set pid random({lo}, {hi})\n" + meta_stmt
    lo, hi = ds.ranges["last10"]
    # POST: the product's characteristic ids are read first (\gset), as the wrk scenario read
    # them up front; this one extra primary-key lookup per POST makes the ceiling slightly lower.
    scripts["post"] = (
        f"\\set pid random({lo}, {hi})\n\\set rating random(1, 5)\n"
        "SELECT array_agg(id ORDER BY id) AS cids, array_agg(1 + floor(random() * 5)::integer ORDER BY id) AS cvals "
        "FROM characteristics WHERE product_id = :pid \\gset\n"
        + strip_sql(sql["post_review"], POST_VARS) + ";\n")
    scripts["helpful"] = f"\\set rid random({rlo}, {rhi})\n" + strip_sql(sql["helpful"], {1: "rid"}) + ";\n"
    scripts["report"] = f"\\set rid random({rlo}, {rhi})\n" + strip_sql(sql["report"], {1: "rid"}) + ";\n"
    paths = {}
    for name, text in scripts.items():
        p = workdir / f"{ds.products}-{name}.pgbench"
        p.write_text(text)
        paths[name] = p
    return paths


def explain(pg: Pg, ds: Dataset) -> dict:
    """How PostgreSQL runs the two read statements, prepared as the service prepares them: the
    plan-cache counters after ten executions (does it settle on a generic plan, or plan every
    call?), then EXPLAIN (ANALYZE, BUFFERS) of the next execution as the plan cache chooses it,
    and of the generic plan forced."""
    lo, hi = ds.ranges["last10"]
    pid = (lo + hi) // 2
    out = {}
    for name, path, types, params in (
            ("list", "list.sql", "integer, text, integer, bigint, bigint", "{id}, 'relevant', 5, 0, 0"),
            ("meta", "meta.sql", "integer", "{id}")):
        sql = strip_sql((ROOT / "sql" / path).read_text(), None)
        lines = [f"PREPARE q({types}) AS {sql};"]
        lines += [f"EXECUTE q({params.format(id=pid - 20 + i)}) \\g /dev/null" for i in range(10)]
        lines += ["SELECT 'generic_plans=' || generic_plans || ' custom_plans=' || custom_plans "
                  "FROM pg_prepared_statements WHERE name = 'q';",
                  f"EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) EXECUTE q({params.format(id=pid)});",
                  "SET plan_cache_mode = force_generic_plan;",
                  f"EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) EXECUTE q({params.format(id=pid + 1)});"]
        text = pg.script(ds.db, "\n".join(lines) + "\n").strip()
        counts = re.search(r"generic_plans=(\d+) custom_plans=(\d+)", text)
        out[name] = {"product_id": pid, "plan": text,
                     "generic_plans": int(counts.group(1)) if counts else None,
                     "custom_plans": int(counts.group(2)) if counts else None}
    return out
