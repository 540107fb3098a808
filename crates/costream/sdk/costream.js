/**
 * costream.js: the browser SDK for costream link-mic rooms (served by the
 * server at /sdk/costream.js; an ES module, no build step, no dependencies).
 * It speaks the WebSocket signaling of docs/signaling.md.
 *
 *   import { Room } from '/sdk/costream.js';
 *   const room = new Room({ token });   // url defaults to ws(s)://<this host>/rtc
 *   room.on('track', ({ identity, stream }) => { video.srcObject = stream; });
 *   const joined = await room.connect();
 *   await room.publish(await navigator.mediaDevices.getUserMedia({ video: true, audio: true }));
 *
 * new Room(options)
 *   url            WebSocket URL of /rtc (default: this page's host).
 *   token          access token (JWT); sent as ?access_token=.
 *   room           optional room name; the server checks it against the token.
 *   autoSubscribe  subscribe to every other publisher (default true).
 *   singleConnection  receive every subscription on one peer connection that the server
 *                  offers and renegotiates as publications come and go (default true);
 *                  false: one peer connection per subscription, offered by the page.
 *   preferH264     put H.264 first when publishing, if the browser has it (default true).
 *   simulcast      publish video in three encodings (full, half and quarter size), so that the
 *                  server can give each subscriber the one its bandwidth budget allows
 *                  (default false; publish(stream, {simulcast}) overrides it).
 *   reconnect      reconnect within the server's grace period when the socket drops (default true).
 *   iceServers     RTCPeerConnection iceServers (default none: the server gives its candidates).
 *   timeoutMs      how long connect() and each request wait for the server (default 15000).
 *
 * Methods
 *   connect()                 resolves with the `joined` message; rejects with a RoomError whose
 *                             message is the server's (e.g. why the token was refused).
 *   publish(stream)           sendonly peer connection for the stream's tracks; resolves with
 *                             `publish_answer`, rejects with a RoomError (code not_granted, ...).
 *   unpublish()               ends the publication (the caller's tracks are not stopped).
 *   subscribe(identity)       resolves with the subscription {identity, pc, stream, session,
 *                             mids}: its tracks on the subscriber connection (pc is shared by
 *                             every subscription; mids are its m-lines), or, without
 *                             singleConnection, a recvonly peer connection of its own.
 *   unsubscribe(identity)
 *   mute(kind, muted = true)  'audio' | 'video': track.enabled and tells the others.
 *   update({name, metadata})  changes one's own name and metadata.
 *   request(), invite(id), accept(id), reject(id), kick(id, 'audience' | 'out')   link-mic.
 *   mix(spec), mixStop()      hosts: the room's mix (docs/signaling.md); mix resolves with its id.
 *                             These, update() and mute() have no answer: they return whether the
 *                             message was sent, and a refusal comes as an `error` event.
 *   leave()                   leaves at once and closes everything.
 *   on(type, fn) -> off function; off(type, fn).
 *
 * State
 *   room.you            own participant object (from `joined`, kept up to date)
 *   room.participants   Map identity -> participant {identity, name, role, grants, metadata, tracks, connected}
 *                       (the others; kept up to date from the events)
 *   room.subscriptions  Map identity -> {identity, pc, stream, session}
 *   room.publication    {pc, stream, session} or null
 *   room.requests, room.invites   pending link-mic requests / invitations (identities)
 *   room.state          'new' | 'connecting' | 'connected' | 'reconnecting' | 'closed'
 *
 * Events (handler gets one argument)
 *   joined, participant_joined, participant_updated, participant_left, track_published,
 *   track_unpublished, track_muted, link_mic, video_paused, speakers, connection_quality:
 *   the server's message as is.
 *   error: an `error` message no pending request was waiting for ({code, message, request}).
 *   track: {identity, stream, pc}, once per subscription, when its answer is applied
 *          (stream holds the receivers' audio and video tracks).
 *   subscription_closed: {identity, reason} ('unpublished', 'left', 'unsubscribed', 'failed', ...).
 *   subscriber_reset: {session, reason, identities}: the subscriber connection could not be
 *          used (an offer failed to apply, or ICE failed); it is closed and the server offers
 *          a new one, after which each subscription gets a new `track` event.
 *   mix: {mix: null, reason}: the room's mix stopped by itself ('host_left').
 *   reconnecting: {}; reconnected: {resumed}; closed: {code, reason}.
 *   message: every server message, before it is handled.
 */

/** An error from the server (`code` is its code) or from the SDK itself. */
export class RoomError extends Error {
  constructor(message, code, request) {
    super(message || code || 'error');
    this.name = 'RoomError';
    this.code = code || 'error';
    if (request) this.request = request;
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Puts `mime` first in a transceiver's codec list (H.264 with
 *  packetization-mode=1 and Constrained Baseline first of those); leaves the
 *  browser's order if it lacks the codec or refuses the list. */
function preferCodec(transceiver, mime) {
  if (typeof transceiver.setCodecPreferences !== 'function') return;
  const score = (c) =>
    (/packetization-mode=1/.test(c.sdpFmtpLine || '') ? 0 : 2) +
    (/profile-level-id=42e01f/i.test(c.sdpFmtpLine || '') ? 0 : 1);
  for (const source of [globalThis.RTCRtpSender, globalThis.RTCRtpReceiver]) {
    try {
      const codecs = (source && source.getCapabilities && source.getCapabilities('video')?.codecs) || [];
      const first = codecs.filter((c) => c.mimeType.toLowerCase() === mime.toLowerCase()).sort((a, b) => score(a) - score(b));
      if (!first.length) return;
      transceiver.setCodecPreferences([...first, ...codecs.filter((c) => !first.includes(c))]);
      return;
    } catch (e) {
      // Some browsers check the list against the other capability set: try it.
    }
  }
}

export class Room {
  constructor(options = {}) {
    const loc = globalThis.location;
    this.options = {
      url: options.url || (loc ? `${loc.protocol === 'https:' ? 'wss' : 'ws'}://${loc.host}/rtc` : ''),
      token: options.token || '',
      room: options.room || null,
      autoSubscribe: options.autoSubscribe !== false,
      singleConnection: options.singleConnection !== false,
      preferH264: options.preferH264 !== false,
      simulcast: !!options.simulcast,
      reconnect: options.reconnect !== false,
      iceServers: options.iceServers || [],
      timeoutMs: options.timeoutMs || 15000,
      iceGatherMs: options.iceGatherMs || 2000,
    };
    this.state = 'new';
    this.you = null;
    this.roomName = null;
    this.participants = new Map();
    this.subscriptions = new Map();
    this.publication = null;
    this.requests = [];
    this.invites = [];
    this._handlers = new Map(); // event type -> Set of functions
    this._pending = new Map(); // request id -> {resolve, reject, timer, answer}
    this._nextId = 1;
    this._ws = null;
    this._graceMs = 10000;
    this._joinedOnce = false;
    this._noReconnect = false; // set when replaced, kicked out or removed
    this._lastStream = null; // republished after a reconnect that did not resume
    this._muted = {}; // kind -> bool, as last set by mute()
    this._failures = new Map(); // identity -> failed subscriptions in a row
    this._subPc = null; // the subscriber connection (singleConnection)
    this._subSession = null;
    this._midOwner = new Map(); // mid -> identity, from the server's offers
    this._offers = Promise.resolve(); // offers are applied one at a time
  }

  // ---- events --------------------------------------------------------------

  on(type, fn) {
    if (!this._handlers.has(type)) this._handlers.set(type, new Set());
    this._handlers.get(type).add(fn);
    return () => this.off(type, fn);
  }

  off(type, fn) {
    this._handlers.get(type)?.delete(fn);
  }

  /** Calls the handlers; one that throws does not stop the others. */
  _emit(type, data) {
    for (const fn of [...(this._handlers.get(type) || [])]) {
      try {
        const r = fn(data);
        if (r && typeof r.catch === 'function') r.catch((e) => console.error(`costream: ${type} handler:`, e));
      } catch (e) {
        console.error(`costream: ${type} handler:`, e);
      }
    }
  }

  _emitError(e, request) {
    this._emit('error', { type: 'error', code: e.code || 'error', message: e.message || String(e), request });
  }

  // ---- connection ----------------------------------------------------------

  connect() {
    if (this.state !== 'new' && this.state !== 'closed') {
      return Promise.reject(new RoomError(`cannot connect while ${this.state}`, 'bad_state'));
    }
    this._noReconnect = false;
    this._joinedOnce = false;
    this.state = 'connecting';
    return this._open(false);
  }

  _wsUrl(resuming) {
    const url = new URL(this.options.url, globalThis.location ? globalThis.location.href : undefined);
    url.searchParams.set('access_token', this.options.token);
    // A reconnect names the sessions this page still holds, which the server
    // keeps; whatever else the previous connection had ends at once.
    if (resuming) {
      const live = (pc) => pc && !['failed', 'closed'].includes(pc.connectionState);
      const held = [];
      if (this.publication && this.publication.session != null && live(this.publication.pc)) held.push(this.publication.session);
      if (this._subSession != null && live(this._subPc)) held.push(this._subSession);
      for (const sub of this.subscriptions.values()) {
        if (!sub.shared && sub.session != null && live(sub.pc)) held.push(sub.session);
      }
      if (held.length) url.searchParams.set('sessions', held.join(','));
    }
    // The server subscribes this page to every publication on its subscriber
    // connection unless told not to.
    if (!this._serverSubscribes()) url.searchParams.set('auto_subscribe', 'false');
    if (this.options.room) url.searchParams.set('room', this.options.room);
    return url.href;
  }

  /** Opens the WebSocket; resolves on `joined`, rejects on a refusal or a
   *  close before it. A drop after `joined` goes to _dropped. */
  _open(resuming) {
    return new Promise((resolve, reject) => {
      let ws;
      let joined = false;
      let settled = false;
      const fail = (err) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this._abortOpen = null;
        reject(err);
      };
      try {
        ws = new WebSocket(this._wsUrl(resuming));
      } catch (e) {
        if (!resuming) this.state = 'closed';
        reject(new RoomError(e.message, 'bad_url'));
        return;
      }
      this._ws = ws;
      this._abortOpen = fail;
      const timer = setTimeout(() => {
        fail(new RoomError(`no answer from ${this.options.url} in ${this.options.timeoutMs} ms`, 'timeout'));
        if (this._ws === ws) this._ws = null;
        try { ws.close(); } catch (e) { /* already closed */ }
        if (!resuming) this._finish(4000, 'timeout');
      }, this.options.timeoutMs);
      ws.onmessage = (ev) => {
        if (this._ws !== ws) return;
        let msg;
        try {
          msg = JSON.parse(ev.data);
        } catch (e) {
          return;
        }
        if (!msg || typeof msg.type !== 'string') return;
        if (!joined && msg.type === 'error' && msg.id == null) fail(new RoomError(msg.message, msg.code));
        this._dispatch(msg);
        if (!joined && msg.type === 'joined') {
          joined = true;
          settled = true;
          clearTimeout(timer);
          this._abortOpen = null;
          resolve(msg);
        }
      };
      ws.onclose = (ev) => {
        if (this._ws !== ws) return; // replaced or closed by us
        this._ws = null;
        fail(new RoomError(`the connection closed (${ev.code}${ev.reason ? ` ${ev.reason}` : ''}) before joining`, 'closed'));
        if (joined) this._dropped(ev);
        else if (!resuming) this._finish(ev.code, ev.reason || 'connect failed');
      };
    });
  }

  /** The socket closed after `joined`: reconnect within the grace period
   *  (the server keeps the participant and its peer connections), or end. */
  async _dropped(ev) {
    this._rejectPending(new RoomError('the connection closed', 'closed'));
    // 4401: token refused, 4403: removed, 4409: replaced by a newer connection.
    if (!this.options.reconnect || this._noReconnect || [4401, 4403, 4409].includes(ev.code)) {
      this._finish(ev.code, ev.reason || 'closed');
      return;
    }
    this.state = 'reconnecting';
    this._emit('reconnecting', {});
    const deadline = Date.now() + this._graceMs;
    let delay = 250;
    while (this.state === 'reconnecting' && Date.now() < deadline) {
      await sleep(delay);
      delay = Math.min(delay * 2, 2000);
      if (this.state !== 'reconnecting') return; // left meanwhile
      try {
        const joined = await this._open(true);
        this._emit('reconnected', { resumed: !!joined.resumed });
        if (!joined.resumed && this._lastStream && !this.publication) {
          this.publish(this._lastStream).catch((e) => this._emitError(e, 'publish'));
        }
        return;
      } catch (e) {
        if (e.code === 'unauthorized' || e.code === 'replaced') break;
      }
    }
    if (this.state === 'reconnecting') this._finish(ev.code, 'reconnect failed');
  }

  /** Closes everything and emits `closed` (once). */
  _finish(code, reason) {
    if (this.state === 'closed') return;
    this.state = 'closed';
    if (this._abortOpen) this._abortOpen(new RoomError(reason, 'closed'));
    const ws = this._ws;
    this._ws = null;
    if (ws) {
      try { ws.close(1000); } catch (e) { /* ignore */ }
    }
    this._rejectPending(new RoomError(reason, 'closed'));
    this._closePublication();
    for (const identity of [...this.subscriptions.keys()]) this._closeSubscription(identity, 'closed');
    this._closeSubPc();
    this._emit('closed', { code, reason });
  }

  leave() {
    if (this.state === 'closed' || this.state === 'new') return;
    this._send({ type: 'leave' }); // sent before the close frame
    this._finish(1000, 'left');
  }

  _send(msg) {
    const ws = this._ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return false;
    try {
      ws.send(JSON.stringify(msg));
      return true;
    } catch (e) {
      return false;
    }
  }

  /** Sends a message that has an answer; resolves with the `answer` message
   *  carrying the same id, rejects with the `error` that does. */
  _request(msg, answer) {
    const id = String(this._nextId++);
    return new Promise((resolve, reject) => {
      if (!this._send({ ...msg, id })) {
        reject(new RoomError('not connected', 'closed', msg.type));
        return;
      }
      const timer = setTimeout(() => {
        this._pending.delete(id);
        reject(new RoomError(`no ${answer} in ${this.options.timeoutMs} ms`, 'timeout', msg.type));
      }, this.options.timeoutMs);
      this._pending.set(id, { resolve, reject, timer, answer });
    });
  }

  _rejectPending(err) {
    for (const p of this._pending.values()) {
      clearTimeout(p.timer);
      p.reject(err);
    }
    this._pending.clear();
  }

  // ---- server messages -----------------------------------------------------

  _dispatch(msg) {
    try {
      this._emit('message', msg);
      this._handle(msg);
    } catch (e) {
      console.error('costream: handling', msg.type, e);
    }
  }

  _handle(msg) {
    const me = this.you && this.you.identity;
    switch (msg.type) {
      case 'joined': {
        if (this._joinedOnce && !msg.resumed) {
          // A new participant for the server: our peer connections are gone.
          this._closePublication();
          for (const identity of [...this.subscriptions.keys()]) this._closeSubscription(identity, 'rejoined');
          this._closeSubPc();
        }
        this._joinedOnce = true;
        this.state = 'connected';
        this.you = msg.you;
        this.roomName = msg.room;
        if (msg.reconnect_grace_ms > 0) this._graceMs = msg.reconnect_grace_ms;
        this.participants = new Map((msg.participants || []).map((p) => [p.identity, p]));
        this.requests = [...(msg.requests || [])];
        this.invites = [...(msg.invites || [])];
        // Subscriptions of participants gone or no longer publishing (a resume).
        for (const identity of [...this.subscriptions.keys()]) {
          if (!this._publishes(identity)) this._closeSubscription(identity, 'unpublished');
        }
        // A resume keeps only the sessions the server still has: a
        // publication it ended is published again.
        if (msg.resumed && this.publication && this.publication.session != null && !(msg.you.tracks || []).length) {
          this._closePublication();
          if (this._lastStream) {
            const stream = this._lastStream;
            queueMicrotask(() => this.publish(stream).catch((e) => this._emitError(e, 'publish')));
          }
        }
        this._emit('joined', msg);
        for (const p of this.participants.values()) this._autoSubscribe(p.identity);
        return;
      }
      case 'participant_joined':
      case 'participant_updated': {
        const p = msg.participant;
        if (!p) break;
        if (p.identity === me) this.you = { ...this.you, ...p };
        else this.participants.set(p.identity, { ...this.participants.get(p.identity), ...p });
        break;
      }
      case 'participant_left':
        this.participants.delete(msg.identity);
        this._closeSubscription(msg.identity, 'left');
        if (msg.identity === me) this._noReconnect = true;
        break;
      case 'track_published': {
        let p = msg.identity === me ? this.you : this.participants.get(msg.identity);
        if (!p && msg.identity) this.participants.set(msg.identity, (p = { identity: msg.identity }));
        if (p) p.tracks = msg.tracks || [];
        this._emit(msg.type, msg);
        this._autoSubscribe(msg.identity);
        return;
      }
      case 'track_unpublished': {
        const p = msg.identity === me ? this.you : this.participants.get(msg.identity);
        if (p) p.tracks = [];
        this._closeSubscription(msg.identity, 'unpublished');
        // Our own publication ended on the server (kicked, timed out). One
        // still waiting for its answer is newer than the one that ended.
        if (msg.identity === me && this.publication && this.publication.session != null) {
          this._closePublication();
          this._lastStream = null;
        }
        break;
      }
      case 'track_muted': {
        const p = msg.identity === me ? this.you : this.participants.get(msg.identity);
        const t = p && (p.tracks || []).find((t) => t.kind === msg.kind);
        if (t) t.muted = !!msg.muted;
        break;
      }
      case 'link_mic': {
        const drop = (list) => list.filter((i) => i !== msg.identity);
        this.requests = drop(this.requests);
        this.invites = drop(this.invites);
        if (msg.action === 'requested') this.requests.push(msg.identity);
        if (msg.action === 'invited') this.invites.push(msg.identity);
        break;
      }
      case 'error': {
        if (msg.code === 'replaced') this._noReconnect = true;
        const waiting = msg.id != null && [...this.subscriptions.values()].find((s) => s.requestId === String(msg.id));
        if (waiting && waiting.fail) {
          waiting.fail(new RoomError(msg.message, msg.code, msg.request));
          return;
        }
        const p = msg.id != null && this._pending.get(String(msg.id));
        if (p) {
          this._pending.delete(String(msg.id));
          clearTimeout(p.timer);
          p.reject(new RoomError(msg.message, msg.code, msg.request));
          return;
        }
        break;
      }
      case 'offer':
        // The subscriber connection's (re)negotiation, in order.
        this._offers = this._offers.then(() => this._applyOffer(msg)).catch((e) => {
          this._emitError(e, 'answer');
          this._resetSubscriber(msg.session, `the offer could not be applied: ${e.message || e}`);
        });
        return;
      case 'video_paused':
        // The bandwidth budget paused or resumed this subscription's video.
        break;
      case 'speakers':
      case 'connection_quality':
        break;
      case 'pong':
        return;
      default: {
        const p = msg.id != null && this._pending.get(String(msg.id));
        if (p && p.answer === msg.type) {
          this._pending.delete(String(msg.id));
          clearTimeout(p.timer);
          p.resolve(msg);
          return;
        }
        // The room's mix changed by itself (stopped when the last host left).
        if (msg.type === 'mix') break;
        return;
      }
    }
    this._emit(msg.type, msg);
  }

  _publishes(identity) {
    const p = this.participants.get(identity);
    return !!(p && p.tracks && p.tracks.length);
  }

  /** Whether the server adds every publication to the subscriber
   *  connection by itself (autoSubscribe with singleConnection). */
  _serverSubscribes() {
    return this.options.autoSubscribe && this.options.singleConnection;
  }

  _autoSubscribe(identity) {
    if (this._serverSubscribes()) return;
    if (!this.options.autoSubscribe || !identity || identity === (this.you && this.you.identity)) return;
    if (!this._publishes(identity)) return;
    const sub = this.subscriptions.get(identity);
    // A live subscription stays (a new publication follows track_unpublished,
    // which closed the old one); a dead one is replaced.
    if (sub && (sub.shared || !['failed', 'closed'].includes(sub.pc.connectionState))) return;
    if (sub) this._closeSubscription(identity, 'failed');
    this.subscribe(identity).catch((e) => {
      if (e.code !== 'cancelled' && e.code !== 'closed') this._emitError(e, 'subscribe');
    });
  }

  // ---- peer connections ----------------------------------------------------

  /** A peer connection whose late ICE candidates (after the offer was sent)
   *  are trickled once the answer names the session. */
  _newPc(holder) {
    const pc = new RTCPeerConnection({ bundlePolicy: 'max-bundle', iceServers: this.options.iceServers });
    holder.pc = pc;
    holder.session = null;
    holder.late = [];
    holder.offerTaken = false;
    pc.addEventListener('icecandidate', (e) => {
      if (!e.candidate || !e.candidate.candidate || !holder.offerTaken) return; // in the offer
      if (holder.session != null) this._trickle(holder.session, e.candidate.candidate);
      else holder.late.push(e.candidate.candidate);
    });
    return pc;
  }

  _trickle(session, candidate) {
    this._send({ type: 'trickle', session, candidate });
  }

  /** createOffer, setLocalDescription, then ICE gathering (bounded): the
   *  offer carries the candidates found so far. */
  async _offer(holder) {
    const pc = holder.pc;
    await pc.setLocalDescription(await pc.createOffer());
    if (pc.iceGatheringState !== 'complete') {
      await new Promise((resolve) => {
        const timer = setTimeout(done, this.options.iceGatherMs);
        function done() {
          clearTimeout(timer);
          pc.removeEventListener('icegatheringstatechange', check);
          resolve();
        }
        function check() {
          if (pc.iceGatheringState === 'complete') done();
        }
        pc.addEventListener('icegatheringstatechange', check);
      });
    }
    holder.offerTaken = true;
    return pc.localDescription.sdp;
  }

  /** Applies the answer and sends the candidates gathered after the offer. */
  async _answered(holder, answer) {
    holder.session = answer.session;
    await holder.pc.setRemoteDescription({ type: 'answer', sdp: answer.sdp });
    for (const c of holder.late.splice(0)) this._trickle(holder.session, c);
  }

  async publish(stream, options = {}) {
    if (this.state !== 'connected') throw new RoomError('not connected', 'closed', 'publish');
    if (this.publication) await this.unpublish();
    const pub = { stream };
    const pc = this._newPc(pub);
    this.publication = pub;
    const preferH264 = options.preferH264 ?? this.options.preferH264;
    const simulcast = options.simulcast ?? this.options.simulcast;
    try {
      for (const track of stream.getTracks()) {
        if (this._muted[track.kind]) track.enabled = false; // muted before publishing
        const init = { direction: 'sendonly', streams: [stream] };
        if (track.kind === 'video' && simulcast) {
          init.sendEncodings = [
            { rid: 'f', maxBitrate: 1200000 },
            { rid: 'h', scaleResolutionDownBy: 2, maxBitrate: 400000 },
            { rid: 'q', scaleResolutionDownBy: 4, maxBitrate: 120000 },
          ];
        }
        const tr = pc.addTransceiver(track, init);
        if (track.kind === 'video' && preferH264) preferCodec(tr, 'video/H264');
      }
      const sdp = await this._offer(pub);
      if (this.publication !== pub) throw new RoomError('unpublished before the offer was sent', 'cancelled', 'publish');
      const answer = await this._request({ type: 'publish', sdp }, 'publish_answer');
      if (this.publication !== pub) throw new RoomError('unpublished before the answer', 'cancelled', 'publish');
      await this._answered(pub, answer);
      this._lastStream = stream;
      // Tell the others about tracks that start muted.
      for (const kind of ['audio', 'video']) {
        const tracks = stream.getTracks().filter((t) => t.kind === kind);
        if (tracks.length && tracks.every((t) => !t.enabled)) this._send({ type: 'mute', kind, muted: true });
      }
      return answer;
    } catch (e) {
      if (this.publication === pub) this._closePublication();
      else if (!(e instanceof RoomError)) throw new RoomError('unpublished meanwhile', 'cancelled', 'publish');
      throw e instanceof RoomError ? e : new RoomError(e.message || String(e), 'client', 'publish');
    }
  }

  async unpublish() {
    this._lastStream = null;
    if (!this.publication) return;
    this._closePublication();
    this._send({ type: 'unpublish' });
  }

  _closePublication() {
    const pub = this.publication;
    this.publication = null;
    if (pub) {
      try { pub.pc.close(); } catch (e) { /* ignore */ }
    }
  }

  subscribe(identity) {
    const existing = this.subscriptions.get(identity);
    if (existing) return existing.ready;
    if (this.state !== 'connected') return Promise.reject(new RoomError('not connected', 'closed', 'subscribe'));
    if (this.options.singleConnection) return this._subscribeShared(identity);
    const sub = { identity };
    const pc = this._newPc(sub);
    const audio = pc.addTransceiver('audio', { direction: 'recvonly' });
    const video = pc.addTransceiver('video', { direction: 'recvonly' });
    sub.stream = new MediaStream([audio.receiver.track, video.receiver.track]);
    sub.sent = false;
    this.subscriptions.set(identity, sub);
    const current = () => this.subscriptions.get(identity) === sub;
    pc.addEventListener('connectionstatechange', () => {
      if (pc.connectionState === 'connected') this._failures.delete(identity);
      if (pc.connectionState !== 'failed' || !current()) return;
      // ICE failed: end it on the server too, and retry a few times.
      this._send({ type: 'unsubscribe', identity });
      this._closeSubscription(identity, 'failed');
      const n = (this._failures.get(identity) || 0) + 1;
      this._failures.set(identity, n);
      if (n <= 3) setTimeout(() => this.state === 'connected' && this._autoSubscribe(identity), 1000 * n);
    });
    sub.ready = (async () => {
      try {
        const sdp = await this._offer(sub);
        if (!current()) throw new RoomError('unsubscribed before the offer was sent', 'cancelled', 'subscribe');
        sub.sent = true;
        const answer = await this._request({ type: 'subscribe', identity, sdp }, 'subscribe_answer');
        if (!current()) throw new RoomError('unsubscribed before the answer', 'cancelled', 'subscribe');
        await this._answered(sub, answer);
        this._emit('track', { identity, stream: sub.stream, pc });
        return sub;
      } catch (e) {
        if (current()) this._closeSubscription(identity, 'error');
        else if (!(e instanceof RoomError)) throw new RoomError('unsubscribed meanwhile', 'cancelled', 'subscribe');
        throw e instanceof RoomError ? e : new RoomError(e.message || String(e), 'client', 'subscribe');
      }
    })();
    sub.ready.catch(() => {}); // callers get the rejection; no unhandled one here
    return sub.ready;
  }

  unsubscribe(identity) {
    const sub = this.subscriptions.get(identity);
    if (!sub) return;
    if (sub.sent || sub.shared) this._send({ type: 'unsubscribe', identity });
    this._closeSubscription(identity, 'unsubscribed');
  }

  _closeSubscription(identity, reason) {
    const sub = this.subscriptions.get(identity);
    if (!sub) return;
    this.subscriptions.delete(identity);
    if (sub.shared) {
      // Its m-lines go inactive at the server's next offer.
      if (sub.fail) sub.fail(new RoomError(`subscription ${reason}`, 'cancelled', 'subscribe'));
      for (const t of sub.stream.getTracks()) sub.stream.removeTrack(t);
    } else {
      try { sub.pc.close(); } catch (e) { /* ignore */ }
    }
    this._emit('subscription_closed', { identity, reason });
  }

  // ---- the subscriber connection (singleConnection) ------------------------

  _ensureSubPc() {
    if (this._subPc) return this._subPc;
    const pc = new RTCPeerConnection({ bundlePolicy: 'max-bundle', iceServers: this.options.iceServers });
    this._subPc = pc;
    pc.addEventListener('track', (e) => {
      const identity = this._midOwner.get(e.transceiver.mid);
      const sub = identity && this.subscriptions.get(identity);
      if (sub && sub.shared && !sub.stream.getTracks().includes(e.track)) sub.stream.addTrack(e.track);
    });
    pc.addEventListener('icecandidate', (e) => {
      if (e.candidate && e.candidate.candidate && this._subSession != null) this._trickle(this._subSession, e.candidate.candidate);
    });
    pc.addEventListener('connectionstatechange', () => {
      if (pc.connectionState !== 'failed' || this._subPc !== pc) return;
      this._resetSubscriber(this._subSession, 'the subscriber connection failed (ICE)');
    });
    return pc;
  }

  _closeSubPc() {
    const pc = this._subPc;
    this._subPc = null;
    this._subSession = null;
    this._midOwner.clear();
    if (pc) {
      try { pc.close(); } catch (e) { /* ignore */ }
    }
  }

  /** Closes the subscriber connection; its subscriptions stay, without
   *  tracks, for the next connection's offer. Returns their identities. */
  _dropSubPc() {
    const identities = [];
    for (const sub of this.subscriptions.values()) {
      if (!sub.shared) continue;
      identities.push(sub.identity);
      for (const t of sub.stream.getTracks()) sub.stream.removeTrack(t);
      sub.mids = [];
    }
    this._closeSubPc();
    return identities;
  }

  /** The subscriber connection is unusable (an offer failed to apply, or
   *  ICE failed): it is closed, never reused, and the server is asked for a
   *  new one, whose offer carries every subscription again (each gets a new
   *  `track` event). The app sees `subscriber_reset`. */
  _resetSubscriber(session, reason) {
    if (session != null && this._subSession != null && String(session) !== String(this._subSession)) return; // an older one
    const identities = this._dropSubPc();
    this._offers = Promise.resolve(); // offers of the closed connection are moot
    this._emit('subscriber_reset', { session: session == null ? null : String(session), reason, identities });
    if (session != null) this._send({ type: 'subscriber_failed', session: String(session), reason });
  }

  /** Asks for a publication on the subscriber connection; resolves when an
   *  offer carrying it has been answered. */
  _subscribeShared(identity) {
    const pc = this._ensureSubPc();
    const sub = { identity, pc, shared: true, stream: new MediaStream(), mids: [], session: null };
    sub.requestId = String(this._nextId++);
    this.subscriptions.set(identity, sub);
    sub.ready = new Promise((resolve, reject) => {
      const timer = setTimeout(() => sub.fail(new RoomError(`no offer in ${this.options.timeoutMs} ms`, 'timeout', 'subscribe')), this.options.timeoutMs);
      sub.done = (v) => {
        clearTimeout(timer);
        sub.done = sub.fail = null;
        resolve(v);
      };
      sub.fail = (e) => {
        clearTimeout(timer);
        sub.done = sub.fail = null;
        if (this.subscriptions.get(identity) === sub) this.subscriptions.delete(identity);
        reject(e);
      };
    });
    sub.ready.catch(() => {}); // callers get the rejection; no unhandled one here
    if (!this._send({ type: 'subscribe', identity, id: sub.requestId })) {
      sub.fail(new RoomError('not connected', 'closed', 'subscribe'));
    }
    return sub.ready;
  }

  /** Applies one server offer and answers it; subscriptions whose tracks it
   *  adds are ready. */
  async _applyOffer(msg) {
    if (this._subPc && this._subSession != null && String(msg.session) !== String(this._subSession)) {
      // The server closed the connection it offered before (ICE timed out,
      // or this participant rejoined) and offers a new one: its m-lines
      // start afresh, so the old peer connection is never reused.
      this._dropSubPc();
    }
    const pc = this._ensureSubPc();
    this._subSession = msg.session;
    for (const t of msg.tracks || []) this._midOwner.set(t.mid, t.identity);
    await pc.setRemoteDescription({ type: 'offer', sdp: msg.sdp });
    await pc.setLocalDescription(await pc.createAnswer());
    this._send({ type: 'answer', sdp: pc.localDescription.sdp });
    const added = new Map();
    for (const t of msg.tracks || []) {
      if (!added.has(t.identity)) added.set(t.identity, []);
      added.get(t.identity).push(t.mid);
    }
    for (const [identity, mids] of added) {
      let sub = this.subscriptions.get(identity);
      if (!sub && this._serverSubscribes()) {
        // Subscribed by the server.
        sub = { identity, pc, shared: true, stream: new MediaStream(), mids: [], session: null };
        sub.ready = Promise.resolve(sub);
        this.subscriptions.set(identity, sub);
      }
      if (!sub || !sub.shared) continue;
      sub.mids = mids;
      sub.session = msg.session;
      // The tracks of these m-lines (ontrack may have come first).
      for (const tr of pc.getTransceivers()) {
        if (mids.includes(tr.mid) && !sub.stream.getTracks().includes(tr.receiver.track)) sub.stream.addTrack(tr.receiver.track);
      }
      this._emit('track', { identity, stream: sub.stream, pc });
      if (sub.done) sub.done(sub);
    }
  }

  // ---- controls ------------------------------------------------------------

  /** Enables or disables the published tracks of a kind and tells the
   *  others; before publish() it applies to the next publication. */
  mute(kind, muted = true) {
    const pub = this.publication;
    if (pub) for (const t of pub.stream.getTracks()) if (t.kind === kind) t.enabled = !muted;
    this._muted[kind] = !!muted;
    // A publication still waiting for its answer reports muted tracks itself.
    if (!pub || pub.session == null) return false;
    return this._send({ type: 'mute', kind, muted: !!muted });
  }

  update({ name, metadata } = {}) {
    const msg = { type: 'update' };
    if (name != null) msg.name = name;
    if (metadata != null) msg.metadata = typeof metadata === 'string' ? metadata : JSON.stringify(metadata);
    return this._control(msg);
  }

  request() { return this._control({ type: 'request' }); }
  invite(identity) { return this._control({ type: 'invite', identity }); }
  accept(identity) { return this._control({ type: 'accept', identity }); }
  reject(identity) { return this._control({ type: 'reject', identity }); }
  kick(identity, to = 'audience') { return this._control({ type: 'kick', identity, to }); }

  /** Hosts: starts the room's mix (spec as POST /api/v1/rooms/{room}/mix, e.g.
   *  {replace: 'live/show', layout: 'pip'}) or changes the running mix's layout
   *  and gain; resolves with the mix's id. */
  async mix(spec = {}) {
    return (await this._request({ ...spec, type: 'mix' }, 'mix')).mix;
  }
  /** Hosts: stops the room's mix. */
  async mixStop() {
    await this._request({ type: 'mix_stop' }, 'mix');
  }

  /** Messages without an answer: a refusal comes as an `error` event.
   *  Returns whether the message was sent (false when not connected). */
  _control(msg) {
    return this._send({ ...msg, id: String(this._nextId++) });
  }
}

export default Room;
