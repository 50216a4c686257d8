/**
 * A bounded, non-recursive look at the shape of a JSON text before it is
 * parsed: nesting depth and duplicated object keys (SPEC §3 "Limits on
 * input"). One pass over the text with an explicit stack, so hostile input
 * (a megabyte of `[`) costs linear time and no call stack.
 *
 * Why duplicated keys are refused: `{"amount":"1","amount":"1000"}` means
 * different things to different parsers (first wins, last wins, error), so
 * the text the business signed and the request we would execute could
 * differ. lossless-json only objects when the two values differ.
 *
 * Not a validator: whatever this lets through is parsed by lossless-json,
 * which rejects malformed JSON.
 */
export type ShapeProblem = { problem: "too_deep"; detail: string } | { problem: "duplicate_key"; detail: string };

interface Frame {
  keys: Set<string> | null; // null for an array
  expectKey: boolean;
}

/** null when the text nests at most `maxDepth` levels and no object repeats a key. */
export function jsonShapeProblem(text: string, maxDepth: number): ShapeProblem | null {
  const stack: Frame[] = [];
  const n = text.length;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      // a string: find its closing quote, skipping escaped characters
      let end = i + 1;
      while (end < n && text.charCodeAt(end) !== 0x22) end += text.charCodeAt(end) === 0x5c ? 2 : 1;
      const top = stack[stack.length - 1];
      if (top?.keys && top.expectKey) {
        let key = text.slice(i + 1, end);
        if (key.includes("\\")) {
          try {
            key = JSON.parse(text.slice(i, end + 1)) as string; // escapes: one string token, no recursion
          } catch {
            return null; // malformed: the parser says so with a better message
          }
        }
        if (top.keys.has(key)) return { problem: "duplicate_key", detail: `object key ${JSON.stringify(key.slice(0, 64))} appears twice` };
        top.keys.add(key);
        top.expectKey = false;
      }
      i = end;
    } else if (c === 0x7b || c === 0x5b) {
      if (stack.length >= maxDepth) return { problem: "too_deep", detail: `nests deeper than ${maxDepth} levels` };
      stack.push({ keys: c === 0x7b ? new Set() : null, expectKey: c === 0x7b });
    } else if (c === 0x7d || c === 0x5d) {
      stack.pop();
    } else if (c === 0x2c) {
      const top = stack[stack.length - 1];
      if (top?.keys) top.expectKey = true;
    }
  }
  return null;
}
