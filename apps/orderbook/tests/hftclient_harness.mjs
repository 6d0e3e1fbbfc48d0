// Test harness: runs clients/js/hftclient.js in Node on frames given as JSON on stdin, prints the results.
// Input: {"module": path, "cases": [{"op": "decode" | "book", "frames": [{"hex"} | {"text"}]}]}.
// Output: one result list per case; BigInt values are written as decimal strings.

import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";

const request = JSON.parse(readFileSync(0, "utf8"));
const client = await import(pathToFileURL(request.module).href);

function frame(item) {
  return item.hex === undefined ? item.text : Uint8Array.from(Buffer.from(item.hex, "hex"));
}

function runCase(hftclient, testCase) {
  if (testCase.op === "decode") {
    return testCase.frames.map((item) => {
      try {
        return hftclient.parseMessage(frame(item));
      } catch (error) {
        return { error: error.name };
      }
    });
  }
  const book = new hftclient.LocalBook("consolidated:BTC-USDT");
  return testCase.frames.map((item) => ({
    applied: book.apply(hftclient.parseMessage(frame(item))),
    sequence: book.sequence,
    inSync: book.isInSync,
    isStale: book.isStale,
    gap: book.gap,
    bids: book.bidLevels(),
    asks: book.askLevels(),
    bestBid: book.bestBid(),
    bestAsk: book.bestAsk(),
  }));
}

const results = request.cases.map((testCase) => runCase(client, testCase));
process.stdout.write(JSON.stringify(results, (_, value) => (typeof value === "bigint" ? value.toString() : value)));
