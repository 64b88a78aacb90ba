"""The documentation keeps its promises: every relative link in README.md and the pages under docs/
(and bench/README.md) points to a file that exists, and to a heading that exists when it names one;
the figures README.md quotes are those of the showdown's report, their one source, and so are those
of docs/deploy.md's capacity table, whose other columns are recomputed from them.

    python3 -m unittest tests.docs.test_docs

Standard library only: it runs before any virtualenv exists.
"""

import math
import re
import unittest
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REPORT = ROOT / "bench" / "results" / "report.md"

# [text](target) and ![alt](target); the target stops at whitespace or ')' (a title may follow).
LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^(```|~~~)")
CODE_SPAN = re.compile(r"`+[^`]*`+")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
FIGURES = re.compile(r"<!-- figures: (\S+) -->\n(.*?)<!-- /figures -->", re.S)
CAPACITY = re.compile(r"<!-- capacity: (\S+) -->\n(.*?)<!-- /capacity -->", re.S)
# The HPA's target share of a replica's 500m CPU request (docs/deploy.md, deploy/base).
HPA_SHARE = 0.35
# A figure: digits with thousands separators or a decimal part, and an optional × (a ratio).
NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?×?")


def pages():
    """The Markdown files whose links are checked."""
    found = [ROOT / "README.md", ROOT / "bench" / "README.md"]
    found += sorted((ROOT / "docs").rglob("*.md"))
    return [p for p in found if p.is_file()]


def prose_lines(text, blank_code=True):
    """The lines outside fenced code blocks, with code spans blanked (a link there is not a link)."""
    fenced = False
    for number, line in enumerate(text.splitlines(), start=1):
        if FENCE.match(line.lstrip()):
            fenced = not fenced
            continue
        if not fenced:
            yield number, CODE_SPAN.sub("", line) if blank_code else line


def links(path):
    """(line, target) of every link in a page."""
    text = path.read_text(encoding="utf-8")
    return [(n, m.group(1)) for n, line in prose_lines(text) for m in LINK.finditer(line)]


def slug(heading):
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"`|\*\*|__", "", heading).strip().lower()
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)  # a link in a heading keeps its text
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path):
    """Every anchor a Markdown file offers, duplicates numbered as GitHub numbers them."""
    seen = {}
    result = set()
    for _, line in prose_lines(path.read_text(encoding="utf-8"), blank_code=False):
        m = HEADING.match(line)
        if not m:
            continue
        base = slug(m.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        result.add(base if count == 0 else f"{base}-{count}")
    return result


def is_external(target):
    return re.match(r"^[a-z][a-z0-9+.-]*:", target) is not None


class Links(unittest.TestCase):
    def test_every_relative_link_resolves_to_a_file_and_heading(self):
        checked = 0
        broken = []
        for page in pages():
            for line, target in links(page):
                if is_external(target):
                    continue
                checked += 1
                where = f"{page.relative_to(ROOT)}:{line}: {target}"
                file_part, _, anchor = target.partition("#")
                dest = (page.parent / file_part).resolve() if file_part else page
                if not dest.exists():
                    broken.append(f"{where} (no such file)")
                elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
                    broken.append(f"{where} (no heading #{anchor} in {dest.relative_to(ROOT)})")
                elif not dest.is_relative_to(ROOT):
                    broken.append(f"{where} (outside the repository)")
        # A checker that found nothing to check proves nothing.
        self.assertGreater(checked, 50, "too few relative links found: is the link pattern broken?")
        self.assertEqual(broken, [], "broken links:\n" + "\n".join(broken))

    def test_every_page_under_docs_is_linked_from_the_readme(self):
        # The README is the way in: a page it does not name is a page a newcomer never finds.
        readme = ROOT / "README.md"
        named = {(readme.parent / t.partition("#")[0]).resolve()
                 for _, t in links(readme) if not is_external(t)}
        pages_under_docs = sorted((ROOT / "docs").glob("*.md"))
        self.assertTrue(pages_under_docs)
        unlinked = [str(p.relative_to(ROOT)) for p in pages_under_docs if p.resolve() not in named]
        self.assertEqual(unlinked, [], "pages README.md does not link to")

    def test_a_broken_link_and_a_missing_heading_are_found(self):
        # The checker's own parts, on text made to fail: it must not pass by seeing nothing.
        self.assertEqual(slug("The WebAssembly component, per host mode"),
                         "the-webassembly-component-per-host-mode")
        self.assertEqual(slug("`ANY /auth` and `ANY /policy/{name}/auth` (forward auth)"),
                         "any-auth-and-any-policynameauth-forward-auth")
        self.assertEqual(slug("WASI 0.3"), "wasi-03")
        line = "see [a](docs/x.md#y), ![img](a.svg), `[not](a link)`, [ext](https://e.org)"
        found = [m.group(1) for _, l in prose_lines(line) for m in LINK.finditer(l)]
        self.assertEqual(found, ["docs/x.md#y", "a.svg", "https://e.org"])
        self.assertEqual(list(prose_lines("```\n[a](b)\n```\n")), [])


class SecurityRules(unittest.TestCase):
    def test_every_test_docs_security_names_exists(self):
        # docs/security.md names, for each rule, the test that fails if the rule is removed; a
        # renamed or deleted test must not leave the page citing a proof that is gone.
        page = (ROOT / "docs" / "security.md").read_text(encoding="utf-8")
        cited = set(re.findall(r"`([a-z0-9]+(?:_[a-z0-9]+){2,})`", page))
        self.assertGreater(len(cited), 20, "docs/security.md cites too few tests")
        defined = set()
        for source in (ROOT / "crates").rglob("*.rs"):
            defined.update(re.findall(r"\bfn ([a-z0-9_]+)\s*\(", source.read_text(encoding="utf-8")))
        self.assertEqual(sorted(cited - defined), [], "tests docs/security.md cites but no crate defines")


class Figures(unittest.TestCase):
    def test_quoted_figures_are_the_reports(self):
        text = (ROOT / "README.md").read_text(encoding="utf-8")
        blocks = FIGURES.findall(text)
        self.assertTrue(blocks, "README.md has no <!-- figures: … --> block")
        for source, block in blocks:
            self.assertEqual(source, "bench/results/report.md", "figures have one source")
            report = (ROOT / source).read_text(encoding="utf-8")
            quoted = NUMBER.findall(block)
            self.assertGreater(len(quoted), 10, "no figures found in the block")
            # Every number counts, the block's wording too ("16 connections"): the report says it.
            missing = [q for q in quoted if not re.search(
                r"(?<![\d.,])" + re.escape(q) + r"(?![\d,]|\.\d)", report)]
            self.assertEqual(missing, [], f"figures in README.md not in {source}: {missing}")


def in_report(figure, report):
    return re.search(r"(?<![\d.,])" + re.escape(figure) + r"(?![\d,]|\.\d)", report) is not None


def three_digits(x):
    """x rounded to three significant digits, as the capacity table writes the per-replica share."""
    return int(float(f"{x:.3g}"))


def capacity_row(per_cpu_second):
    """The columns after the first figure: per replica at the HPA target, replicas for 10k, 100k, 1M."""
    cells = [f"{three_digits(per_cpu_second * HPA_SHARE):,}"]
    for rate in (10_000, 100_000, 1_000_000):
        n = math.ceil(rate / (per_cpu_second * HPA_SHARE))
        cells.append(f"2 (the minimum; {n} by CPU)" if n < 2 else f"{n:,}")
    return cells


class Capacity(unittest.TestCase):
    def test_the_capacity_table_is_the_reports_figures_and_their_arithmetic(self):
        text = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
        blocks = CAPACITY.findall(text)
        self.assertEqual(len(blocks), 1, "docs/deploy.md has no <!-- capacity: … --> block")
        source, block = blocks[0]
        self.assertEqual(source, "bench/results/report.md", "figures have one source")
        report = (ROOT / source).read_text(encoding="utf-8")
        rows = [[c.strip() for c in line.strip().strip("|").split("|")]
                for line in block.splitlines() if line.startswith("|")][2:]
        self.assertGreaterEqual(len(rows), 4, "no rows in the capacity table")
        for row in rows:
            figure = row[1]
            self.assertTrue(in_report(figure, report), f"{row[0]}: {figure} is not in {source}")
            self.assertEqual(row[2:], capacity_row(int(figure.replace(",", ""))), row[0])

    def test_a_row_off_by_a_replica_is_found(self):
        self.assertEqual(capacity_row(65_773), ["23,000", "2 (the minimum; 1 by CPU)", "5", "44"])
        self.assertNotEqual(capacity_row(65_773)[3], "45")


if __name__ == "__main__":
    unittest.main()
