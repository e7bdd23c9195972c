// The portal's exact decimals (crates/tally-gateway/portal/decimal.js) and exact JSON parsing
// (api.js), checked in Node without a browser.

import assert from "node:assert/strict";
import { test } from "node:test";

import { parseExact } from "../../crates/tally-gateway/portal/api.js";
import { compare, format, fraction, parse, sum } from "../../crates/tally-gateway/portal/decimal.js";

test("sums are exact where floating point is not", () => {
  assert.equal(0.1 + 0.2 === 0.3, false, "the trap this module avoids");
  assert.equal(sum(["0.1", "0.2"]), "0.3");
  assert.equal(sum(["9007199254740993.0000000001", "1"]), "9007199254740994.0000000001");
  assert.equal(sum(["2.4000000000", "17"]), "19.4000000000");
  assert.equal(sum(["1.00000000000000000001", "-0.00000000000000000002"]), "0.99999999999999999999");
  assert.equal(sum(["-1.5", "0.25"]), "-1.25");
  assert.equal(sum(["-0.5"]), "-0.5");
  assert.equal(sum([]), "0");
});

test("parse and format round-trip every spelling the API uses", () => {
  for (const text of ["0", "17", "0.0000000001", "2.4000000000", "-12.5", "123456789012345678901234567890.12345678901234567890"]) {
    assert.equal(format(parse(text)), text);
  }
  for (const bad of ["", "1e5", "1.", ".5", "NaN", "1,5", " - 1"]) {
    assert.throws(() => parse(bad), /not an exact decimal/, bad);
  }
});

test("comparisons and bar sizes", () => {
  assert.equal(compare("2.50", "2.5"), 0);
  assert.equal(compare("9007199254740993", "9007199254740992.9999999999"), 1);
  assert.equal(compare("-1", "0"), -1);
  assert.equal(fraction("1", "4"), 0.25);
  assert.equal(fraction("0", "4"), 0);
  assert.equal(fraction("3", "0"), 0);
});

test("JSON numbers named quantity keep their digits", () => {
  const text =
    '{"value":[{"properties":{"quantity":9007199254740993.0000000001,"instanceData":"{\\"quantity\\":1.1}","unit":"Hours"}}],"count":3}';
  const parsed = parseExact(text);
  assert.equal(parsed.value[0].properties.quantity, "9007199254740993.0000000001");
  assert.equal(parsed.value[0].properties.instanceData, '{"quantity":1.1}', "text inside strings is untouched");
  assert.equal(parsed.count, 3);
});
