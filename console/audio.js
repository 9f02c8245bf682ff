// Browser audio: the agent's session leg as a WebRTC peer connection to dialerd (microphone
// out, the customer in), with an input level meter, mute, and the level of what is heard.
// dialerd is ICE-lite on its media addresses: the offer goes with the login and the answer
// comes back in its response, so there is no trickling and no STUN or TURN server.

/** Level (0–1) of an analyser's signal now: the peak of its time-domain samples. */
function peak(analyser, buf) {
  analyser.getFloatTimeDomainData(buf);
  let p = 0;
  for (const v of buf) p = Math.max(p, Math.abs(v));
  return p;
}

/** Frequency (Hz) of the loudest bin of an analyser's spectrum now. */
function loudestHz(analyser, bins) {
  analyser.getFloatFrequencyData(bins);
  let best = 0;
  for (let i = 1; i < bins.length; i++) if (bins[i] > bins[best]) best = i;
  return (best * analyser.context.sampleRate) / analyser.fftSize;
}

export class BrowserAudio {
  /** `onLost(why)` is called once when the connection fails or closes from the far end. */
  constructor(onLost) {
    this.onLost = onLost;
    this.pc = null;
    this.mic = null;
    this.ctx = null;
    this.local = null;
    this.remote = null;
    this.closed = false;
  }

  /** Asks for the microphone and makes the SDP offer (audio only). */
  async offer() {
    this.mic = await navigator.mediaDevices.getUserMedia({ audio: true, video: false });
    this.ctx = new AudioContext();
    // Started from the login click; a context made outside a gesture starts suspended.
    this.ctx.resume().catch(() => {});
    this.local = this.analyse(this.mic);
    this.pc = new RTCPeerConnection({ bundlePolicy: "max-bundle", rtcpMuxPolicy: "require" });
    for (const track of this.mic.getAudioTracks()) this.pc.addTrack(track, this.mic);
    this.pc.ontrack = (ev) => this.play(ev.streams[0] || new MediaStream([ev.track]));
    this.pc.onconnectionstatechange = () => {
      const s = this.pc && this.pc.connectionState;
      if (!this.closed && (s === "failed" || s === "closed")) this.lost(`connection ${s}`);
    };
    const offer = await this.pc.createOffer();
    await this.pc.setLocalDescription(offer);
    return this.pc.localDescription.sdp;
  }

  /** Applies dialerd's SDP answer. */
  async answer(sdp) {
    await this.pc.setRemoteDescription({ type: "answer", sdp });
  }

  analyse(stream) {
    const a = this.ctx.createAnalyser();
    a.fftSize = 2048;
    this.ctx.createMediaStreamSource(stream).connect(a);
    return { analyser: a, buf: new Float32Array(a.fftSize), bins: new Float32Array(a.frequencyBinCount) };
  }

  play(stream) {
    const el = document.getElementById("remote-audio");
    if (el) {
      el.srcObject = stream;
      el.play().catch(() => {});
    }
    if (this.ctx) {
      this.ctx.resume().catch(() => {});
      this.remote = this.analyse(stream);
    }
  }

  /** Level (0–1) of the microphone and of what is heard, and the loudest heard frequency. */
  levels() {
    const of = (x) => (x ? peak(x.analyser, x.buf) : 0);
    return {
      mic: of(this.local),
      heard: of(this.remote),
      heardHz: this.remote ? loudestHz(this.remote.analyser, this.remote.bins) : 0,
      state: this.pc ? this.pc.connectionState : "none",
      codec: this.codec(),
      dtmf: this.canSendDtmf(),
    };
  }

  /** Whether the connection can send RFC 4733 events (a telephone-event at the codec's clock
   * was agreed). */
  canSendDtmf() {
    const sender = this.pc ? this.pc.getSenders().find((s) => s.dtmf) : null;
    return Boolean(sender && sender.dtmf.canInsertDTMF);
  }

  /** Sends `digits` (0-9, *, #) as RFC 4733 events, 100 ms each with 70 ms between, as a
   * phone's keypad does; false when no telephone-event was agreed. */
  sendDigits(digits) {
    const sender = this.pc ? this.pc.getSenders().find((s) => s.dtmf) : null;
    if (!sender || !sender.dtmf.canInsertDTMF) return false;
    sender.dtmf.insertDTMF(digits, 100, 70);
    return true;
  }

  /** The codec dialerd answered with (`PCMU/8000`), from its SDP answer. */
  codec() {
    const sdp = this.pc && this.pc.remoteDescription ? this.pc.remoteDescription.sdp : "";
    const m = /^m=audio \S+ \S+ (\d+)/m.exec(sdp);
    const map = m && new RegExp(`^a=rtpmap:${m[1]} (\\S+)`, "m").exec(sdp);
    return map ? map[1] : null;
  }

  /** Stops sending RTP (every encoding inactive) while ICE and DTLS stay up: what a network
   * that drops the media does, for tests of the reconnect. */
  async stopSending() {
    for (const sender of this.pc ? this.pc.getSenders() : []) {
      const p = sender.getParameters();
      for (const e of p.encodings || []) e.active = false;
      await sender.setParameters(p);
    }
  }

  /** Mutes (`on`) or unmutes the microphone. */
  mute(on) {
    if (this.mic) for (const t of this.mic.getAudioTracks()) t.enabled = !on;
  }

  lost(why) {
    this.close();
    this.onLost(why);
  }

  /** Ends the connection and releases the microphone. */
  close() {
    this.closed = true;
    if (this.pc) this.pc.close();
    if (this.mic) for (const t of this.mic.getTracks()) t.stop();
    if (this.ctx) this.ctx.close().catch(() => {});
    this.pc = null;
    this.mic = null;
    this.ctx = null;
    this.local = null;
    this.remote = null;
  }
}
