// The live transcript: the caller's partials and commits, what the agent says and what was
// heard of it (the unheard rest struck through), barge-ins, and each turn's latency.

const VOICE_LEVEL = 0.015; // microphone RMS above this counts as the caller speaking
const STILL_TALKING_MS = 120; // caller voice this recent: the agent started over the caller

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

export class Transcript {
  /** @param {HTMLOListElement} list */
  constructor(list) {
    this.list = list;
    this.callerPending = null; // {li, finals, partial}
    this.agentPending = []; // bubbles waiting for their `heard`, oldest first
    this.callerTurns = new Map();
    this.lastVoiceAt = null;
    this.voiceSinceAgent = false;
    this.latencies = [];
  }

  _bubble(kind) {
    const li = element("li", `${kind} pending`);
    li.dataset.kind = kind;
    li.dataset.state = "pending";
    li.append(element("span", "who", kind === "caller" ? "You" : "Agent"));
    li.append(element("span", "text"));
    this.list.append(li);
    li.scrollIntoView({ block: "end", behavior: "smooth" });
    return li;
  }

  note(text) {
    const li = element("li", "note", text);
    this.list.append(li);
  }

  _callerBubble() {
    if (!this.callerPending) this.callerPending = { li: this._bubble("caller"), finals: "", partial: "" };
    return this.callerPending;
  }

  _agentBubble() {
    if (this.agentPending.length === 0) this.agentPending.push(this._bubble("agent"));
    return this.agentPending[this.agentPending.length - 1];
  }

  /** A page event from the server ({event: "phone", type, …}). */
  onPageEvent(event) {
    switch (event.type) {
      case "partial":
      case "final": {
        const pending = this._callerBubble();
        if (event.type === "final") {
          pending.finals = `${pending.finals} ${event.text}`.trim();
          pending.partial = "";
        } else {
          pending.partial = event.text;
        }
        pending.li.querySelector(".text").textContent = `${pending.finals} ${pending.partial}`.trim();
        break;
      }
      case "committed": {
        const committed = this.callerTurns.get(event.turn);
        if (event.revision && committed) {
          committed.querySelector(".text").textContent = event.text; // a late final's fuller text
          break;
        }
        const { li } = this._callerBubble();
        this.callerPending = null;
        li.classList.remove("pending");
        li.dataset.state = "committed";
        li.dataset.turn = event.turn;
        li.querySelector(".text").textContent = event.text;
        this.callerTurns.set(event.turn, li);
        break;
      }
      case "metrics": {
        const li = this.callerTurns.get(event.turn);
        const silence = event.data && event.data.silence_s;
        if (li && typeof silence === "number") {
          li.append(element("span", "figures", `commit ${Math.round(silence * 1000)} ms after you stopped`));
        }
        break;
      }
      case "agent_text": {
        const li = this._agentBubble();
        const text = li.querySelector(".text");
        text.textContent = `${text.textContent} ${event.text}`.trim();
        break;
      }
      case "heard": {
        const li = this.agentPending.shift() || this._bubble("agent");
        li.classList.remove("pending");
        li.dataset.state = "heard";
        li.dataset.turn = event.turn;
        li.dataset.interrupted = String(Boolean(event.interrupted));
        const text = li.querySelector(".text");
        text.textContent = event.text;
        if (event.unheard) {
          text.append(" ");
          text.append(element("span", "unheard", event.unheard));
        }
        if (event.interrupted && !li.querySelector(".tag")) {
          li.querySelector(".who").after(element("span", "tag", "interrupted"));
        } else if (!event.interrupted) {
          // A clear at your first sound (a soft clear) only paused the agent: it went on.
          li.querySelector(".tag")?.remove();
        }
        break;
      }
      default:
        break;
    }
  }

  /** Microphone loudness of one 20 ms frame. */
  onCallerLevel(level, now = performance.now()) {
    if (level > VOICE_LEVEL) {
      this.lastVoiceAt = now;
      this.voiceSinceAgent = true;
    }
  }

  /** The agent's audio on this page: "playing", "idle", "clear", … */
  onAgent(kind, now = performance.now()) {
    if (kind === "playing") {
      const li = this._agentBubble();
      if (this.voiceSinceAgent && this.lastVoiceAt !== null && !li.dataset.latencyMs) {
        const latency = now - this.lastVoiceAt;
        if (latency > STILL_TALKING_MS) {
          li.dataset.latencyMs = String(Math.round(latency));
          this.latencies.push(latency);
          li.append(element("span", "figures", `replied ${Math.round(latency)} ms after you stopped`));
        }
      }
      this.voiceSinceAgent = false;
    } else if (kind === "clear") {
      const li = this.agentPending[0];
      if (li && !li.querySelector(".tag")) li.querySelector(".who").after(element("span", "tag", "you cut in"));
    }
  }
}
