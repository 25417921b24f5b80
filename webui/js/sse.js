// sse.js - a parser of text/event-stream (the WHATWG server-sent events
// format), fed with text as it arrives.
//
// The console cannot use the browser's EventSource: it sends no
// Authorization header, and the key must not travel in the URL. So
// api.js reads the stream with fetch() and hands the chunks here.
//
// Lines end with CRLF, LF or CR (a CR at the end of one chunk and an LF at
// the start of the next are one line end). "field: value" lines build an
// event; a blank line dispatches it; ":" starts a comment (the server's
// heartbeats). Fields: data (joined with "\n"), event (default "message"),
// id (kept across events, as the spec says, unless it holds NUL), retry.

export class SseParser {
  constructor(onEvent) {
    this.onEvent = onEvent;
    this.buf = '';
    this.skipLf = false;
    this.data = [];
    this.event = '';
    this.lastId = '';
    this.retry = null;
  }

  feed(text) {
    let s = text;
    if (this.skipLf && s.startsWith('\n')) s = s.slice(1);
    this.skipLf = false;
    this.buf += s;
    let start = 0;
    for (let i = 0; i < this.buf.length; i += 1) {
      const c = this.buf[i];
      if (c !== '\n' && c !== '\r') continue;
      this.line(this.buf.slice(start, i));
      if (c === '\r') {
        if (i + 1 < this.buf.length) {
          if (this.buf[i + 1] === '\n') i += 1;
        } else {
          this.skipLf = true;
        }
      }
      start = i + 1;
    }
    this.buf = this.buf.slice(start);
  }

  line(l) {
    if (l === '') {
      if (this.data.length) {
        this.onEvent({ event: this.event || 'message', data: this.data.join('\n'), id: this.lastId });
      }
      this.data = [];
      this.event = '';
      return;
    }
    if (l.startsWith(':')) return;
    const colon = l.indexOf(':');
    const field = colon < 0 ? l : l.slice(0, colon);
    let value = colon < 0 ? '' : l.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') this.data.push(value);
    else if (field === 'event') this.event = value;
    else if (field === 'id' && !value.includes('\0')) this.lastId = value;
    else if (field === 'retry' && /^\d+$/.test(value)) this.retry = Number(value);
  }
}
