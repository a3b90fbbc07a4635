// The live event stream: one EventSource on /devtools/api/events, with its state made
// visible. EventSource reconnects by itself after a network error; when the browser gives
// up (an HTTP error status closes it for good) we open a new one with a backoff.

export const TOPICS = [
  'system.connected',
  'system.disconnected',
  'system.dropped',
  'process.started',
  'process.stopped',
  'connection.opened',
  'connection.closed',
  'request.http_transaction',
];

/**
 * States: `connecting` (first attempt), `live` (open), `reconnecting` (lost, retrying),
 * `stopped` (the daemon said system.disconnected; retrying too, since a socket-activated
 * daemon starts again on the next connection).
 */
export class Stream {
  constructor(url, { onEvent, onState, EventSourceImpl = globalThis.EventSource } = {}) {
    this.url = url;
    this.onEvent = onEvent || (() => {});
    this.onState = onState || (() => {});
    this.ES = EventSourceImpl;
    this.es = null;
    this.state = 'idle';
    this.retries = 0;
    this.timer = null;
    this.stoppedReason = null;
    this.lastEventId = null;
  }

  setState(state, info = {}) {
    this.state = state;
    this.onState(state, info);
  }

  start() {
    this.close();
    this.setState(this.retries ? 'reconnecting' : 'connecting', { retries: this.retries });
    const es = new this.ES(this.url);
    this.es = es;
    // The stream is live once the daemon says so (`system.connected` comes after the
    // probes are attached), not when the HTTP response opens: traffic before that is
    // not captured, and the indicator must not claim otherwise.
    es.onopen = () => {
      this.retries = 0;
      this.stoppedReason = null;
    };
    es.onerror = () => {
      if (es !== this.es) return;
      if (es.readyState === 2 /* CLOSED */) {
        // the browser will not retry (HTTP error status or wrong content type): we do
        this.retries++;
        const delay = Math.min(10000, 500 * 2 ** Math.min(this.retries, 5));
        this.setState(this.stoppedReason ? 'stopped' : 'reconnecting', { retries: this.retries, delay, reason: this.stoppedReason });
        clearTimeout(this.timer);
        this.timer = setTimeout(() => this.start(), delay);
      } else {
        this.retries++;
        this.setState(this.stoppedReason ? 'stopped' : 'reconnecting', { retries: this.retries, reason: this.stoppedReason });
      }
    };
    for (const topic of TOPICS) {
      es.addEventListener(topic, (msg) => {
        if (es !== this.es) return;
        this.lastEventId = msg.lastEventId || this.lastEventId;
        let env;
        try {
          env = JSON.parse(msg.data);
        } catch {
          return; // a frame we cannot read is skipped, not fatal
        }
        if (topic === 'system.disconnected') {
          this.stoppedReason = (env.data && env.data.reason) || 'daemon stopped';
          this.setState('stopped', { reason: this.stoppedReason });
        } else if (topic === 'system.connected') {
          this.stoppedReason = null;
          this.setState('live');
        }
        this.onEvent(topic, env);
      });
    }
  }

  close() {
    clearTimeout(this.timer);
    if (this.es) {
      this.es.onopen = this.es.onerror = null;
      this.es.close();
      this.es = null;
    }
  }
}
