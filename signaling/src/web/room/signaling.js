// The room's WebSocket: one connection at a time, messages handled one after another
// (each handler may await the browser), reconnection with backoff. Knows nothing of the
// room's meaning: main.js decides what to send and what a message does.
import { reconnectDelay } from './backoff.js';

export class SignalingClient {
  /**
   * `handlers`: onOpen(), onMessage(msg) (may return a Promise; the next message waits
   * for it), onError(e) for a handler that threw, onClose() after an unexpected close.
   */
  constructor(url, handlers) {
    this.url = url;
    this.handlers = handlers;
    this.ws = null;
    this.reconnectTimer = null;
  }

  get isOpen() {
    return Boolean(this.ws && this.ws.readyState === WebSocket.OPEN);
  }

  connect() {
    const ws = new WebSocket(this.url);
    this.ws = ws;
    ws.onopen = () => this.handlers.onOpen();
    let chain = Promise.resolve();
    ws.onmessage = (ev) => {
      chain = chain
        .then(() => {
          if (this.ws !== ws) return undefined;
          let msg;
          try {
            msg = JSON.parse(ev.data);
          } catch {
            return undefined; // not JSON: not from our server
          }
          return this.handlers.onMessage(msg);
        })
        .catch((e) => {
          // A peer connection closed under a handler by a reconnection: nothing is wrong.
          if (this.ws === ws) this.handlers.onError(e);
        });
    };
    ws.onclose = () => {
      if (this.ws === ws) this.handlers.onClose();
    };
  }

  send(msg) {
    if (this.isOpen) this.ws.send(JSON.stringify(msg));
  }

  /** Closes without telling onClose (leaving, or a refusal the person must fix). */
  closeQuietly() {
    const ws = this.ws;
    this.ws = null;
    if (ws) ws.close();
  }

  /** Closes; onClose follows (and usually a reconnection). */
  close() {
    if (this.ws) this.ws.close();
  }

  /** Reconnects after the backoff for `attempt`; calls `before()` just before connecting. */
  scheduleReconnect(attempt, before) {
    if (this.reconnectTimer) return false;
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      before();
      this.connect();
    }, reconnectDelay(attempt));
    return true;
  }
}
