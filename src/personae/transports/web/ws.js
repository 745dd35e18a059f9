// The WebSocket protocol (docs/protocol.md) with reconnect-and-resume: after a drop the client
// reconnects with backoff, asks in ``connect`` for every event after the seqs ``resume()``
// names, and resends the sends that had no answer (their idempotency keys make that safe).

const PROTOCOL = { min: 1, max: 1 };

export class Realtime {
  constructor({ token, deviceId, resume, onEvent, onStatus }) {
    this.token = token;
    this.deviceId = deviceId;
    this.resume = resume; // () => {conversation: last_seq}
    this.onEvent = onEvent;
    this.onStatus = onStatus;
    this.pending = new Map(); // request id -> {frame, resolve, reject, replay, sent}
    this.nextId = 1;
    this.attempt = 0;
    this.ready = false;
    this.stopped = false;
    this.socket = null;
  }

  start() {
    this.stopped = false;
    this.open();
  }

  stop() {
    this.stopped = true;
    this.socket?.close(1000);
  }

  // Drop the connection as a network failure would (the reconnect logic takes over).
  drop() {
    this.socket?.close(4000, "dropped by the client");
  }

  // A request's answer (its ``result``), or a rejection with the server's error. Requests
  // made with ``replay`` wait for a connection and survive reconnects.
  request(method, params, { replay = false } = {}) {
    return new Promise((resolve, reject) => {
      const id = `r${this.nextId++}`;
      const frame = { type: "req", id, method, params };
      if (!this.ready && !replay) {
        reject({ code: "offline", message: "not connected; reconnecting" });
        return;
      }
      this.pending.set(id, { frame, resolve, reject, replay, sent: false });
      if (this.ready) this.send(id);
    });
  }

  send(id) {
    const entry = this.pending.get(id);
    entry.sent = true;
    this.socket.send(JSON.stringify(entry.frame));
  }

  open() {
    const url = new URL("/ws", location.href);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    const socket = new WebSocket(url);
    this.socket = socket;
    this.ready = false;
    this.onStatus("connecting");
    socket.onopen = () => this.handshake(socket);
    socket.onmessage = (message) => this.receive(message.data);
    socket.onclose = (event) => this.closed(socket, event);
  }

  handshake(socket) {
    const params = { protocol: PROTOCOL, device_id: this.deviceId, resume: this.resume() };
    if (this.token) params.token = this.token;
    const id = `c${this.nextId++}`;
    this.pending.set(id, {
      connect: true,
      resolve: (hello) => this.connected(hello),
      reject: (error) => {
        this.stopped = error.code === "not_authenticated";
        this.onStatus(this.stopped ? "denied" : "offline", error);
      },
    });
    socket.send(JSON.stringify({ type: "req", id, method: "connect", params }));
  }

  connected(hello) {
    this.ready = true;
    this.attempt = 0;
    this.onStatus("online", hello);
    for (const [id, entry] of this.pending) {
      if (entry.replay && !entry.sent) this.send(id);
    }
  }

  receive(data) {
    let frame;
    try {
      frame = JSON.parse(data);
    } catch {
      return;
    }
    if (frame.type === "res") {
      const entry = this.pending.get(frame.id);
      if (!entry) return;
      this.pending.delete(frame.id);
      if (frame.ok) entry.resolve(frame.result);
      else entry.reject(frame.error);
    } else if (frame.type === "event" && frame.event !== "ping") {
      this.onEvent(frame);
    }
  }

  closed(socket, event) {
    if (socket !== this.socket) return;
    this.ready = false;
    for (const [id, entry] of this.pending) {
      if (entry.connect) this.pending.delete(id);
      else if (entry.replay) entry.sent = false;
      else {
        this.pending.delete(id);
        entry.reject({ code: "disconnected", message: "the connection dropped" });
      }
    }
    if (this.stopped) return;
    this.onStatus("offline", { message: event.reason || `closed (${event.code})` });
    const delay = Math.min(5000, 250 * 2 ** this.attempt++) * (0.5 + Math.random() / 2);
    setTimeout(() => this.stopped || this.open(), delay);
  }
}
