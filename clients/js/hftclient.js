// hftclient.js: the hftplatform order-book stream in JavaScript. Decoders of binary frames
// (docs/binary-protocol.md) and JSON frames (docs/streaming.md), a LocalBook with gap detection, and a
// small connect() helper over WebSocket. One ES module without dependencies, for browsers and Node 20.
//
// Numbers are exact: prices and sizes are canonical decimal strings ("67321.12", "0.5"), never floats;
// sequences and nanosecond timestamps are BigInt, since they do not fit a double.

export const PROTOCOL_VERSION = 1;
export const MessageType = Object.freeze({ SNAPSHOT: 1, DELTA: 2, HEARTBEAT: 3, TRADE: 4, ERROR: 5, STALE: 6 });
export const CONSOLIDATED = "consolidated";
// Close codes after which reconnecting cannot help (docs/streaming.md).
export const FATAL_CLOSE_CODES = Object.freeze([4400, 4401, 4403, 4431]);

const REASONS = ["", "subscribe", "resync", "history", "reset"];
const AGGRESSORS = ["", "buy", "sell"];
const NO_TIMESTAMP = -(2n ** 63n);
const BOOK_HEADER_SIZE = 47;
const MAX_FIELD_BYTES = 8; // every level value is an i64
const utf8 = new TextDecoder("utf-8", { fatal: true });

export class DecodeError extends Error {
  constructor(message) {
    super(message);
    this.name = "DecodeError";
  }
}

// ---- Exact decimals ----------------------------------------------------------------------------

/** Fixed-point units (BigInt) at `decimals` places to canonical decimal text: 6732112n, 2 → "67321.12". */
export function unitsToDecimal(units, decimals) {
  const negative = units < 0n;
  let digits = (negative ? -units : units).toString();
  let text;
  if (decimals <= 0) {
    text = units === 0n ? "0" : digits + "0".repeat(-decimals);
  } else {
    digits = digits.padStart(decimals + 1, "0");
    const whole = digits.slice(0, -decimals);
    const fraction = digits.slice(-decimals).replace(/0+$/, "");
    text = fraction ? `${whole}.${fraction}` : whole;
  }
  return negative && text !== "0" ? `-${text}` : text;
}

/** Decimal text in canonical form, so that equal values are equal strings: "0.50000000" → "0.5". */
export function canonicalDecimal(text) {
  let body = String(text).trim();
  let sign = "";
  if (body[0] === "-" || body[0] === "+") {
    sign = body[0] === "-" ? "-" : "";
    body = body.slice(1);
  }
  if (!/^(\d+\.?\d*|\.\d+)$/.test(body)) {
    throw new DecodeError(`not a decimal: ${JSON.stringify(text)}`);
  }
  const [rawWhole, rawFraction = ""] = body.split(".");
  const whole = rawWhole.replace(/^0+/, "") || "0";
  const fraction = rawFraction.replace(/0+$/, "");
  const result = fraction ? `${whole}.${fraction}` : whole;
  return result === "0" ? "0" : sign + result;
}

/** Order of two canonical decimal strings: negative, zero or positive, like a sort comparator. */
export function compareDecimal(a, b) {
  const aNegative = a[0] === "-";
  const bNegative = b[0] === "-";
  if (aNegative !== bNegative) {
    return aNegative ? -1 : 1;
  }
  const order = compareMagnitude(aNegative ? a.slice(1) : a, bNegative ? b.slice(1) : b);
  return aNegative ? -order : order;
}

function compareMagnitude(a, b) {
  const [aWhole, aFraction = ""] = a.split(".");
  const [bWhole, bFraction = ""] = b.split(".");
  if (aWhole.length !== bWhole.length) {
    return aWhole.length < bWhole.length ? -1 : 1;
  }
  if (aWhole !== bWhole) {
    return aWhole < bWhole ? -1 : 1;
  }
  const width = Math.max(aFraction.length, bFraction.length);
  const x = aFraction.padEnd(width, "0");
  const y = bFraction.padEnd(width, "0");
  return x === y ? 0 : x < y ? -1 : 1;
}

// ---- Binary frames -----------------------------------------------------------------------------

/** One binary frame (ArrayBuffer, typed array or DataView) to a message object. */
export function decodeBinary(data) {
  const view = asDataView(data);
  if (view.byteLength < 2) {
    throw new DecodeError("frame shorter than its header");
  }
  const version = view.getUint8(0);
  const type = view.getUint8(1);
  if (version !== PROTOCOL_VERSION) {
    throw new DecodeError(`protocol version ${version}, this client reads ${PROTOCOL_VERSION}`);
  }
  try {
    switch (type) {
      case MessageType.SNAPSHOT:
      case MessageType.DELTA:
        return decodeBook(view, type);
      case MessageType.HEARTBEAT:
        return decodeHeartbeat(view);
      case MessageType.STALE:
        return decodeStale(view);
      case MessageType.TRADE:
        return decodeTrade(view);
      case MessageType.ERROR:
        return decodeError(view);
      default:
        return { type: `binary:${type}`, body: {} };
    }
  } catch (error) {
    if (error instanceof RangeError || error instanceof TypeError) {
      throw new DecodeError(`malformed message of type ${type}: ${error.message}`);
    }
    throw error;
  }
}

function asDataView(data) {
  if (data instanceof DataView) {
    return data;
  }
  if (data instanceof ArrayBuffer) {
    return new DataView(data);
  }
  if (ArrayBuffer.isView(data)) {
    return new DataView(data.buffer, data.byteOffset, data.byteLength);
  }
  throw new DecodeError("a binary frame must be an ArrayBuffer or a typed array");
}

function need(view, size) {
  if (view.byteLength < size) {
    throw new DecodeError(`frame of ${view.byteLength} bytes, expected at least ${size}`);
  }
}

function timestampOrNull(value) {
  return value === NO_TIMESTAMP ? null : value;
}

function binarySource(view) {
  return { pair: null, venue: null, instrumentId: view.getUint32(2, true), venueId: view.getUint16(6, true) };
}

// A level is a byte of field lengths (price high nibble, size low), then the price as a step from the
// previous level of the side and the size, both signed little-endian integers of those lengths.
function readLevels(view, offset, count, priceDecimals, sizeDecimals) {
  const levels = new Array(count);
  let price = 0n;
  for (let i = 0; i < count; i++) {
    need(view, offset + 1);
    const lengths = view.getUint8(offset);
    const priceLength = lengths >> 4;
    const sizeLength = lengths & 0x0f;
    if (priceLength > MAX_FIELD_BYTES || sizeLength > MAX_FIELD_BYTES) {
      throw new DecodeError(`bad level at byte ${offset}`);
    }
    need(view, offset + 1 + priceLength + sizeLength);
    price += readSigned(view, offset + 1, priceLength);
    const size = readSigned(view, offset + 1 + priceLength, sizeLength);
    levels[i] = [unitsToDecimal(price, priceDecimals), unitsToDecimal(size, sizeDecimals)];
    offset += 1 + priceLength + sizeLength;
  }
  return [levels, offset];
}

function readSigned(view, offset, length) {
  if (length === 0) {
    return 0n;
  }
  if (length === 8) {
    return view.getBigInt64(offset, true);
  }
  let value;
  if (length <= 6) {
    value = 0; // a double holds 48 bits exactly, and Number arithmetic is much faster than BigInt
    for (let i = length - 1; i >= 0; i--) {
      value = value * 256 + view.getUint8(offset + i);
    }
    value = BigInt(value);
  } else {
    value = 0n;
    for (let i = length - 1; i >= 0; i--) {
      value = (value << 8n) | BigInt(view.getUint8(offset + i));
    }
  }
  return BigInt.asIntN(length * 8, value);
}

function decodeBook(view, type) {
  need(view, BOOK_HEADER_SIZE);
  const priceDecimals = view.getInt8(16);
  const sizeDecimals = view.getInt8(17);
  const reasonCode = view.getUint8(18);
  const [bids, next] = readLevels(view, BOOK_HEADER_SIZE, view.getUint16(43, true), priceDecimals, sizeDecimals);
  const [asks] = readLevels(view, next, view.getUint16(45, true), priceDecimals, sizeDecimals);
  return {
    type: type === MessageType.SNAPSHOT ? "snapshot" : "delta",
    ...binarySource(view),
    sequence: view.getBigUint64(8, true),
    reason: REASONS[reasonCode] ?? `reason:${reasonCode}`,
    priceDecimals,
    sizeDecimals,
    exchangeTimestamp: timestampOrNull(view.getBigInt64(19, true)),
    receiveTimestamp: view.getBigInt64(27, true),
    timestamp: view.getBigInt64(35, true),
    bids,
    asks,
  };
}

function decodeHeartbeat(view) {
  need(view, 24);
  return {
    type: "heartbeat",
    ...binarySource(view),
    sequence: view.getBigUint64(8, true),
    timestamp: view.getBigInt64(16, true),
  };
}

function readText(view, offset) {
  need(view, offset + 2);
  const length = view.getUint16(offset, true);
  need(view, offset + 2 + length);
  try {
    return [utf8.decode(new Uint8Array(view.buffer, view.byteOffset + offset + 2, length)), offset + 2 + length];
  } catch (error) {
    throw new DecodeError(`a string that is not UTF-8 at ${offset}: ${error.message}`);
  }
}

function decodeStale(view) {
  need(view, 24);
  return {
    type: "stale",
    ...binarySource(view),
    sequence: view.getBigUint64(8, true),
    timestamp: view.getBigInt64(16, true),
    reason: readText(view, 24)[0],
  };
}

function decodeTrade(view) {
  need(view, 43);
  const priceDecimals = view.getInt8(8);
  const sizeDecimals = view.getInt8(9);
  return {
    type: "trade",
    ...binarySource(view),
    priceDecimals,
    sizeDecimals,
    aggressor: AGGRESSORS[view.getUint8(10)] ?? "",
    price: unitsToDecimal(view.getBigInt64(11, true), priceDecimals),
    size: unitsToDecimal(view.getBigInt64(19, true), sizeDecimals),
    exchangeTimestamp: timestampOrNull(view.getBigInt64(27, true)),
    receiveTimestamp: view.getBigInt64(35, true),
    tradeId: readText(view, 43)[0],
  };
}

function decodeError(view) {
  need(view, 6);
  const requestId = view.getUint32(2, true);
  const [code, next] = readText(view, 6);
  return { type: "error", id: requestId === 0 ? null : requestId, code, message: readText(view, next)[0] };
}

// ---- JSON frames -------------------------------------------------------------------------------

// Sequences and ns timestamps pass 2**53, where JSON.parse would round them: quote them first.
const BIG_FIELDS = /(?<!\\)"(sequence|since_sequence|timestamp|exchange_timestamp|receive_timestamp)"\s*:\s*(-?\d+)/g;

const bigOrNull = (value) => (value === null || value === undefined ? null : BigInt(value));
const jsonLevels = (levels) => levels.map(([price, size]) => [canonicalDecimal(price), canonicalDecimal(size)]);

function jsonSource(body) {
  return {
    pair: body.pair ?? null,
    venue: body.venue ?? null,
    instrumentId: body.instrument_id ?? null,
    venueId: body.venue_id ?? null,
  };
}

const JSON_PARSERS = {
  snapshot: bookFromJson,
  delta: bookFromJson,
  heartbeat: (body) => ({
    type: "heartbeat",
    ...jsonSource(body),
    sequence: BigInt(body.sequence),
    timestamp: BigInt(body.timestamp),
  }),
  stale: (body) => ({
    type: "stale",
    ...jsonSource(body),
    sequence: BigInt(body.sequence),
    timestamp: BigInt(body.timestamp),
    reason: body.reason ?? "",
  }),
  trade: (body) => ({
    type: "trade",
    ...jsonSource(body),
    priceDecimals: null,
    sizeDecimals: null,
    aggressor: body.aggressor ?? "",
    price: canonicalDecimal(body.price),
    size: canonicalDecimal(body.size),
    exchangeTimestamp: bigOrNull(body.exchange_timestamp),
    receiveTimestamp: bigOrNull(body.receive_timestamp),
    tradeId: String(body.trade_id),
  }),
  error: (body) => ({ type: "error", id: body.id ?? null, code: body.code, message: body.message ?? "" }),
  subscribed: (body) => ({
    type: "subscribed",
    id: body.id ?? null,
    pair: body.pair,
    venue: body.venue,
    book: body.book ?? bookKey(body.venue, body.pair),
    instrumentId: body.instrument_id,
    venueId: body.venue_id,
    depth: body.depth,
    depthCapped: Boolean(body.depth_capped),
    priceDecimals: body.price_decimals,
    sizeDecimals: body.size_decimals,
    format: body.format ?? "json",
  }),
  unsubscribed: (body) => ({ type: "unsubscribed", id: body.id ?? null, pair: body.pair, venue: body.venue }),
  pong: (body) => ({ type: "pong", id: body.id ?? null, timestamp: bigOrNull(body.timestamp) }),
};

function bookFromJson(body) {
  return {
    type: body.type,
    ...jsonSource(body),
    sequence: BigInt(body.sequence),
    reason: body.reason ?? "",
    priceDecimals: null,
    sizeDecimals: null,
    exchangeTimestamp: bigOrNull(body.exchange_timestamp),
    receiveTimestamp: bigOrNull(body.receive_timestamp),
    timestamp: BigInt(body.timestamp),
    bids: jsonLevels(body.bids),
    asks: jsonLevels(body.asks),
  };
}

/** One JSON text frame to a message object of the same shape as decodeBinary's. */
export function parseJson(text) {
  let body;
  try {
    body = JSON.parse(text.replace(BIG_FIELDS, '"$1":"$2"'));
  } catch (error) {
    throw new DecodeError(`not JSON: ${error.message}`);
  }
  if (body === null || typeof body !== "object" || typeof body.type !== "string") {
    throw new DecodeError("a stream message is an object with a type");
  }
  const parse = JSON_PARSERS[body.type];
  if (parse === undefined) {
    return { type: body.type, body };
  }
  try {
    return parse(body);
  } catch (error) {
    if (error instanceof DecodeError) {
      throw error;
    }
    throw new DecodeError(`malformed ${body.type} message: ${error.message}`);
  }
}

/** A frame as a WebSocket delivers it: text is JSON, anything else binary. */
export function parseMessage(data) {
  return typeof data === "string" ? parseJson(data) : decodeBinary(data);
}

export function bookKey(venue, pair) {
  return `${venue}:${pair}`;
}

export function normalisePair(pair) {
  return pair.trim().toUpperCase().replaceAll("/", "-").replaceAll("_", "-");
}

// ---- The local book ----------------------------------------------------------------------------

/**
 * One book kept from stream messages (docs/streaming.md): exact levels as decimal strings, the last
 * applied sequence, and whether the copy can be trusted. apply() returns false when the book has a
 * gap: it then ignores deltas until the next snapshot (ask for one with a resync).
 */
export class LocalBook {
  constructor(key = "") {
    this.key = key;
    this.sequence = null;
    this.bids = new Map(); // price → size
    this.asks = new Map();
    this.isStale = false;
    this.gap = null; // {expected: BigInt | null, received: BigInt}
    this.exchangeTimestamp = null;
    this.timestamp = null;
  }

  get isInSync() {
    return this.sequence !== null && this.gap === null && !this.isStale;
  }

  apply(message) {
    switch (message.type) {
      case "snapshot":
        this.reset(message);
        return true;
      case "delta":
        return this.applyDelta(message);
      case "stale":
        return this.applyStale(message);
      case "heartbeat":
        return this.checkHeartbeat(message);
      default:
        return true;
    }
  }

  reset(snapshot) {
    // Whatever its sequence: after a platform-wide reset the sequence may go down.
    this.bids = new Map(snapshot.bids.filter(([, size]) => size !== "0"));
    this.asks = new Map(snapshot.asks.filter(([, size]) => size !== "0"));
    this.sequence = snapshot.sequence;
    this.gap = null;
    this.isStale = false;
    this.exchangeTimestamp = snapshot.exchangeTimestamp;
    this.timestamp = snapshot.timestamp;
  }

  applyDelta(delta) {
    if (this.gap !== null) {
      return false;
    }
    if (this.sequence === null || delta.sequence !== this.sequence + 1n) {
      this.gap = { expected: this.sequence === null ? null : this.sequence + 1n, received: delta.sequence };
      return false;
    }
    for (const [side, levels] of [
      [this.bids, delta.bids],
      [this.asks, delta.asks],
    ]) {
      for (const [price, size] of levels) {
        if (size === "0") {
          side.delete(price);
        } else {
          side.set(price, size);
        }
      }
    }
    this.sequence = delta.sequence;
    this.exchangeTimestamp = delta.exchangeTimestamp;
    this.timestamp = delta.timestamp;
    return true;
  }

  applyStale(stale) {
    // A stale event is numbered like any book event; one at our own sequence (sent on subscribe to a book
    // that is already stale) is no gap.
    this.isStale = true;
    if (this.gap !== null) {
      return false;
    }
    if (this.sequence === null || stale.sequence <= this.sequence) {
      return true;
    }
    if (stale.sequence !== this.sequence + 1n) {
      this.gap = { expected: this.sequence + 1n, received: stale.sequence };
      return false;
    }
    this.sequence = stale.sequence;
    this.timestamp = stale.timestamp;
    return true;
  }

  checkHeartbeat(heartbeat) {
    if (this.gap !== null) {
      return false;
    }
    if (this.sequence !== null && heartbeat.sequence > this.sequence) {
      this.gap = { expected: this.sequence + 1n, received: heartbeat.sequence };
      return false;
    }
    return true;
  }

  /** Bids as [price, size], best (highest) first. */
  bidLevels(depth = Infinity) {
    return [...this.bids].sort((a, b) => compareDecimal(b[0], a[0])).slice(0, depth);
  }

  /** Asks as [price, size], best (lowest) first. */
  askLevels(depth = Infinity) {
    return [...this.asks].sort((a, b) => compareDecimal(a[0], b[0])).slice(0, depth);
  }

  bestBid() {
    return bestOf(this.bids, 1);
  }

  bestAsk() {
    return bestOf(this.asks, -1);
  }
}

function bestOf(levels, direction) {
  let best = null;
  for (const level of levels) {
    if (best === null || compareDecimal(level[0], best[0]) * direction > 0) {
      best = level;
    }
  }
  return best;
}

// ---- Connecting --------------------------------------------------------------------------------

/** Local wall-clock time in ns (µs resolution in browsers), for latency = received - timestamp. */
export function nowNs() {
  const ms = performance.timeOrigin + performance.now();
  return BigInt(Math.round(ms * 1000)) * 1000n;
}

/**
 * Open a stream and keep local books for `subscriptions` ([{pair, venue?, depth?}]). Browsers cannot set
 * headers on a WebSocket, so the API key travels as `?api_key=`. `onUpdate({message, book, receivedNs,
 * latencyNs})` is called for every message; a gap sends one resync, and a dropped connection is reopened
 * with since_sequence. `url` defaults to this page's host. Returns the stream; `close()` ends it.
 */
export function connect({
  url,
  apiKey,
  subscriptions,
  format = "json",
  onUpdate = () => {},
  onClose = () => {},
  WebSocketImpl = globalThis.WebSocket,
  reconnectDelayMs = 200,
  maxReconnectDelayMs = 5000,
}) {
  const base = url ?? `${globalThis.location.protocol === "https:" ? "wss" : "ws"}://${globalThis.location.host}`;
  const stream = new BookStream({
    base,
    apiKey,
    subscriptions,
    format,
    onUpdate,
    onClose,
    WebSocketImpl,
    reconnectDelayMs,
    maxReconnectDelayMs,
  });
  stream.open();
  return stream;
}

export class BookStream {
  constructor(options) {
    this.options = options;
    this.books = new Map(); // book key → LocalBook
    this.connections = 0;
    this.subscriptions = new Map(options.subscriptions.map((s) => [subscriptionKey(s), s]));
    this.bookIds = new Map(); // "instrumentId:venueId" → book key
    this.resyncRequested = new Set();
    this.socket = null;
    this.nextId = 0;
    this.isClosing = false;
    this.delayMs = options.reconnectDelayMs;
  }

  open() {
    const [first, ...others] = this.subscriptions.values();
    const query = new URLSearchParams({ format: this.options.format, venue: first.venue ?? CONSOLIDATED });
    if (first.depth !== undefined && first.depth !== null) {
      query.set("depth", String(first.depth));
    }
    const since = this.resumePoint(subscriptionKey(first));
    if (since !== null) {
      query.set("since_sequence", since.toString());
    }
    query.set("api_key", this.options.apiKey);
    const socket = new this.options.WebSocketImpl(
      `${this.options.base}/api/hft/ws/orderbook/${encodeURIComponent(first.pair)}?${query}`,
    );
    socket.binaryType = "arraybuffer";
    socket.onopen = () => {
      this.connections += 1;
      this.delayMs = this.options.reconnectDelayMs;
      this.resyncRequested.clear(); // a book with a gap resumes with a snapshot
      for (const subscription of others) {
        this.sendSubscribe(subscription);
      }
    };
    socket.onmessage = (event) => this.receive(event.data, nowNs());
    socket.onclose = (event) => this.closed(event.code, event.reason);
    this.socket = socket;
  }

  subscribe(subscription) {
    this.subscriptions.set(subscriptionKey(subscription), subscription);
    return this.sendSubscribe(subscription);
  }

  unsubscribe(pair, venue = CONSOLIDATED) {
    const key = bookKey(venue, normalisePair(pair));
    this.subscriptions.delete(key);
    this.books.delete(key);
    return this.send({ op: "unsubscribe", pair: normalisePair(pair), venue });
  }

  resync(pair, venue = CONSOLIDATED) {
    return this.send({ op: "resync", pair: normalisePair(pair), venue });
  }

  ping() {
    return this.send({ op: "ping" });
  }

  close() {
    this.isClosing = true;
    this.socket?.close(1000);
  }

  resumePoint(key) {
    const book = this.books.get(key);
    return book === undefined || book.gap !== null ? null : book.sequence;
  }

  sendSubscribe(subscription) {
    const op = { op: "subscribe", pair: normalisePair(subscription.pair), venue: subscription.venue ?? CONSOLIDATED };
    if (subscription.depth !== undefined && subscription.depth !== null) {
      op.depth = subscription.depth;
    }
    const since = this.resumePoint(subscriptionKey(subscription));
    if (since !== null) {
      op.since_sequence = Number(since); // exact: sequences stay far below 2**53
    }
    return this.send(op);
  }

  send(op) {
    this.nextId += 1;
    if (this.socket !== null && this.socket.readyState === 1) {
      this.socket.send(JSON.stringify({ ...op, id: this.nextId }));
    }
    return this.nextId;
  }

  receive(data, receivedNs) {
    const message = parseMessage(data);
    let book = null;
    if (message.type === "subscribed") {
      this.bookIds.set(`${message.instrumentId}:${message.venueId}`, message.book);
      if (!this.books.has(message.book)) {
        this.books.set(message.book, new LocalBook(message.book));
      }
    } else if (message.type === "unsubscribed") {
      this.books.delete(bookKey(message.venue, message.pair));
    } else if ("instrumentId" in message) {
      book = this.books.get(this.keyOf(message)) ?? null;
    }
    let latencyNs = null;
    if (book !== null && message.type !== "trade") {
      if (message.type === "snapshot") {
        this.resyncRequested.delete(book.key);
      }
      book.apply(message);
      latencyNs = receivedNs - message.timestamp;
    }
    this.options.onUpdate({ message, book, receivedNs, latencyNs });
    if (book !== null && book.gap !== null && !this.resyncRequested.has(book.key)) {
      this.resyncRequested.add(book.key);
      const [venue, pair] = splitKey(book.key);
      this.resync(pair, venue);
    }
  }

  keyOf(message) {
    if (message.pair !== null) {
      return bookKey(message.venue ?? CONSOLIDATED, message.pair);
    }
    return this.bookIds.get(`${message.instrumentId}:${message.venueId}`) ?? "";
  }

  closed(code, reason) {
    this.socket = null;
    if (this.isClosing || FATAL_CLOSE_CODES.includes(code)) {
      this.options.onClose({ code, reason, isFinal: true });
      return;
    }
    this.options.onClose({ code, reason, isFinal: false });
    setTimeout(() => this.isClosing || this.open(), this.delayMs);
    this.delayMs = Math.min(this.delayMs * 2, this.options.maxReconnectDelayMs);
  }
}

function subscriptionKey(subscription) {
  return bookKey(subscription.venue ?? CONSOLIDATED, normalisePair(subscription.pair));
}

function splitKey(key) {
  const at = key.indexOf(":");
  return [key.slice(0, at), key.slice(at + 1)];
}
