// Push: the page's channels over one WebSocket, or over Server-Sent Events where a
// WebSocket cannot connect (a proxy that refuses the upgrade). Two kinds of channel:
// - the feed (user:{id}) resumes after the last event shown, so a disconnect loses nothing;
// - the live channel (dashboard, dashboard:{sellerId}) carries whole snapshots: it starts
//   live and the page fetches the current snapshot after every (re)connect instead of
//   replaying what it missed (after a night away that would be tens of thousands).
import { accessToken, api, ApiError, refresh, signedIn } from "./dashboard-session.js";

const SESSION_ENDED = 4401;   // close code: the credentials that opened the stream ended
const WS_TRIES = 2;           // WebSocket failures before the next attempts use SSE
const WS_AGAIN_MS = 300000;   // how long to stay on SSE before trying a WebSocket again
const BACKOFF_MS = [500, 1000, 2000, 4000, 8000];

/**
 * handlers: onEvent(channel, id, envelope), onState(state, transport),
 * onLiveOpen() (fetch the snapshot now), onLiveRefused(channel, code).
 */
export class Push {
  constructor(handlers) {
    this.on = handlers;
    this.feed = null;        // user:{id}
    this.live = null;        // the dashboard channel, or null
    this.after = "0";        // resume point of the feed: the id of the last event shown
    this.transport = new URLSearchParams(location.search).get("transport") === "sse" ? "sse" : "ws";
    this.wsFailures = 0;
    this.sseSince = 0;
    this.attempt = 0;
    this.generation = 0;     // bumped by stop(): callbacks of an older connection do nothing
    this.socket = null;
    this.aborts = [];
    this.timer = null;
  }

  start(feed, live) {
    this.feed = feed;
    this.live = live;
    this.after = "0";
    this.connect();
  }

  stop() {
    this.generation += 1;
    clearTimeout(this.timer);
    if (this.socket) { const ws = this.socket; this.socket = null; ws.close(1000); }
    this.aborts.forEach((a) => a.abort());
    this.aborts = [];
  }

  /** Follow another dashboard channel (an admin's seller picker). */
  switchLive(live) {
    const old = this.live;
    this.live = live;
    if (this.socket?.readyState === WebSocket.OPEN) {
      if (old) this.send({ type: "unsubscribe", channel: old });
      if (live) this.send({ type: "subscribe", channel: live });
      this.on.onLiveOpen();
    } else {
      this.stop();
      this.connect();
    }
  }

  connect() {
    this.timer = null;
    if (!signedIn()) return;
    const generation = this.generation;
    if (this.transport === "sse" && Date.now() - this.sseSince > WS_AGAIN_MS) {
      this.transport = "ws";
      this.wsFailures = 0;
    }
    this.on.onState("connecting", this.transport);
    const opened = this.transport === "ws" ? this.openSocket(generation) : this.openSse(generation);
    opened.catch((err) => this.dropped(generation, err instanceof ApiError ? err.status : 0));
  }

  /** Reconnect after a lost stream; a stream whose credentials ended renews them first. */
  dropped(generation, code) {
    if (generation !== this.generation || !signedIn()) return;
    this.stop();
    const again = this.generation;
    this.on.onState("reconnecting", this.transport);
    const wait = BACKOFF_MS[Math.min(this.attempt, BACKOFF_MS.length - 1)];
    this.attempt += 1;
    const reconnect = (ms) => {
      this.timer = setTimeout(() => { if (again === this.generation) this.connect(); }, ms);
    };
    if (code === SESSION_ENDED || code === 401) refresh().then(() => reconnect(0), () => reconnect(wait));
    else reconnect(wait);
  }

  /** Reconnect now if waiting to (the network came back). */
  kick() {
    if (this.socket || this.aborts.length || !this.timer) return;
    clearTimeout(this.timer);
    this.timer = null;
    this.attempt = 0;
    this.connect();
  }

  send(frame) {
    this.socket.send(JSON.stringify(frame));
  }

  connected(generation) {
    if (generation !== this.generation) return;
    this.attempt = 0;
    this.on.onState("live", this.transport);
    this.on.onLiveOpen();
  }

  async openSocket(generation) {
    const { ticket } = await api("POST", "/v1/stream-tickets");
    if (generation !== this.generation) return;
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const ws = new WebSocket(`${scheme}://${location.host}/v1/ws?token=${encodeURIComponent(ticket)}`);
    let open = false;
    this.socket = ws;
    ws.onopen = () => {
      open = true;
      this.wsFailures = 0;
      this.send({ type: "resume", channel: this.feed, after: this.after });
      if (this.live) this.send({ type: "subscribe", channel: this.live });
      this.connected(generation);
    };
    ws.onmessage = (message) => {
      const frame = JSON.parse(message.data);
      if (frame.type === "event") this.deliver(frame.channel, frame.id, frame.event);
      else if (frame.type === "error" && frame.channel && frame.channel === this.live) {
        this.on.onLiveRefused(frame.channel, frame.code);
      } else if (frame.type === "error") console.warn("push:", frame);
    };
    ws.onclose = (event) => {
      if (this.socket !== ws) return;  // replaced, or stopped
      this.socket = null;
      if (!open && ++this.wsFailures >= WS_TRIES) {
        this.transport = "sse";
        this.sseSince = Date.now();
      }
      this.dropped(generation, event.code);
    };
  }

  deliver(channel, id, envelope) {
    if (channel === this.feed) this.after = id;
    this.on.onEvent(channel, id, envelope);
  }

  // SSE read with fetch rather than EventSource: it sends the bearer token and
  // Last-Event-ID itself, and sees every event type (EventSource hears only the names it
  // was told). The feed and the live channel are two streams: one resumes, one starts live.
  async openSse(generation) {
    const feed = this.sse(generation, this.feed, this.after, (kind, data, id) => {
      if (kind === "ready") {
        this.connected(generation);
        if (id && id !== "earliest") this.after = id;
      } else if (data?.event) {
        this.deliver(data.channel, id, data.event);
      }
    });
    const streams = [feed];
    if (this.live) {
      const live = this.live;
      streams.push(this.sse(generation, live, null, (kind, data) => {
        if (data?.event) this.deliver(data.channel, null, data.event);
      }).catch((err) => {
        if (err instanceof ApiError && err.status === 403) this.on.onLiveRefused(live, err.code);
        else if (err instanceof ApiError && err.status === 400) this.on.onLiveRefused(live, err.code);
        else throw err;
        return new Promise(() => {});  // refused for good: the feed decides when to reconnect
      }));
    }
    await Promise.race(streams);
    throw new ApiError(0, null);  // a stream ended: reconnect both
  }

  /** Read one SSE stream until it ends; resolves with nothing, rejects on a refusal. */
  async sse(generation, channel, after, handle) {
    const abort = new AbortController();
    this.aborts.push(abort);
    const headers = { Accept: "text/event-stream", Authorization: `Bearer ${accessToken()}` };
    if (after !== null) headers["Last-Event-ID"] = after;
    const response = await fetch(`/v1/events?channels=${encodeURIComponent(channel)}`,
      { headers, signal: abort.signal, cache: "no-store" });
    if (!response.ok) {
      throw new ApiError(response.status, await response.json().catch(() => null));
    }
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "", kind = "message", data = [], id = null;
    for (;;) {
      const { value, done } = await reader.read();
      if (done || generation !== this.generation) return;
      buffer += value;
      let end;
      while ((end = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, end).replace(/\r$/, "");
        buffer = buffer.slice(end + 1);
        if (line === "") {  // a blank line ends a frame
          if (data.length) {
            const body = JSON.parse(data.join("\n"));
            if (kind === "close") throw new ApiError(body.code || 0, null);
            handle(kind, body, id);
          }
          kind = "message"; data = [];
          continue;
        }
        const colon = line.indexOf(":");
        if (colon === 0) continue;  // a comment (keepalive)
        const field = colon < 0 ? line : line.slice(0, colon);
        const text = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "event") kind = text;
        else if (field === "data") data.push(text);
        else if (field === "id") id = text;
      }
    }
  }
}
