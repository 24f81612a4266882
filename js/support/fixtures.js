// The agreement fixtures: .svdi files encoded from svdcodec/data/sample.png and their Python
// decodes, made by make_fixtures.py. If they are missing and SVDI_PYTHON names a Python with
// svdcodec installed, they are made now; otherwise the tests fail and say how to make them
// (.ci/js makes them first). They are never skipped.
import { existsSync, readFileSync } from "node:fs";
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";

export const FIXTURES = process.env.SVDI_FIXTURES ||
  fileURLToPath(new URL("../test-artifacts/fixtures/", import.meta.url));
const SCRIPT = fileURLToPath(new URL("../test/make_fixtures.py", import.meta.url));

export function loadFixtures() {
  const listing = `${FIXTURES}/fixtures.json`;
  if (!existsSync(listing)) {
    const python = process.env.SVDI_PYTHON;
    if (!python) {
      throw new Error(`no fixtures in ${FIXTURES}: run "python js/test/make_fixtures.py" with ` +
        "svdcodec installed, or set SVDI_PYTHON to such a python");
    }
    execFileSync(python, [SCRIPT, FIXTURES], { stdio: "inherit" });
  }
  return JSON.parse(readFileSync(listing, "utf8")).fixtures;
}

/** The truncated="fill" fixtures (make_fixtures.py's truncated_fixtures): files, and for each
 * cut the reference decoder's output or error. */
export function loadTruncatedFixtures() {
  loadFixtures(); // makes them if they are missing
  const listing = JSON.parse(readFileSync(`${FIXTURES}/fixtures.json`, "utf8"));
  if (!listing.truncated) {
    throw new Error(`${FIXTURES}/fixtures.json has no truncated fixtures: made by an older ` +
      "make_fixtures.py; run it again");
  }
  return listing.truncated;
}
