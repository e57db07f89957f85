/* Live job progress.
 *
 * 1. LiveSource: an EventSource that resumes where it stopped and falls back to
 *    the WebSocket stream when Server-Sent Events fail. htmx's SSE extension
 *    uses it (htmx.createEventSource) for a single job's page.
 * 2. The per-user stream of the ingest and jobs pages: one connection for every
 *    card (browsers allow only six HTTP/1.1 connections per host, so one stream
 *    per card would stall the page past five jobs).
 *
 * An event never changes a card itself: it only says "job X changed", and the
 * card is fetched again whole from the server, so a replayed or late event
 * cannot leave it wrong.
 */
(function () {
  "use strict";

  var JOB_EVENTS = [
    "job_started", "stage_started", "stage_progress", "stage_completed",
    "job_completed", "error", "job_cancelled"
  ];
  var FINAL_EVENTS = ["job_completed", "error", "job_cancelled"];
  // Consecutive SSE failures without one successful open before trying WebSocket.
  var SSE_ATTEMPTS = 3;
  var CONNECTING = 0, OPEN = 1, CLOSED = 2;

  document.documentElement.classList.add("js");

  function absolute(url) {
    return new URL(url, window.location.href);
  }

  function withLastId(url, lastId) {
    var target = absolute(url);
    if (lastId) { target.searchParams.set("last_event_id", lastId); }
    return target;
  }

  function socketUrl(url, lastId) {
    var target = withLastId(url, lastId);
    target.protocol = target.protocol === "https:" ? "wss:" : "ws:";
    target.pathname = target.pathname === "/api/v1/stream"
      ? "/ws/v1/jobs"
      : target.pathname.replace("/api/v1/stream/", "/ws/v1/stream/");
    return target.toString();
  }

  function LiveSource(url) {
    this.url = url;
    this.singleJob = absolute(url).pathname.indexOf("/api/v1/stream/") === 0;
    this.lastId = absolute(url).searchParams.get("last_event_id") || "";
    this.readyState = CONNECTING;
    this.transport = "";
    this.onopen = null;
    this.onerror = null;
    this._target = document.createElement("span");
    this._failures = 0;
    this._everOpened = false;
    this._sse = null;
    this._socket = null;
    this._timer = null;
    if (window.EventSource) { this._openSse(); } else { this._openSocket(); }
  }

  LiveSource.prototype.addEventListener = function (type, listener, options) {
    this._target.addEventListener(type, listener, options);
  };
  LiveSource.prototype.removeEventListener = function (type, listener, options) {
    this._target.removeEventListener(type, listener, options);
  };

  LiveSource.prototype.close = function () {
    this.readyState = CLOSED;
    window.clearTimeout(this._timer);
    if (this._sse) { this._sse.close(); this._sse = null; }
    if (this._socket) { this._socket.close(1000); this._socket = null; }
  };

  LiveSource.prototype._use = function (transport) {
    this.transport = transport;
    document.documentElement.setAttribute("data-live-transport", transport);
  };

  LiveSource.prototype._opened = function () {
    var again = this._everOpened;
    this.readyState = OPEN;
    this._everOpened = true;
    this._failures = 0;
    if (this.onopen) { this.onopen(new Event("open")); }
    // Cards may have missed a re-fetch while the connection was down.
    if (again) { this._target.dispatchEvent(new Event("reconnected")); }
  };

  LiveSource.prototype._failed = function (event) {
    if (this.onerror) { this.onerror(event); }
  };

  LiveSource.prototype._deliver = function (type, data, id) {
    if (this.readyState === CLOSED) { return; }
    if (id) { this.lastId = id; }
    this._target.dispatchEvent(new MessageEvent(type, { data: data, lastEventId: id || "" }));
    if (this.singleJob && FINAL_EVENTS.indexOf(type) !== -1) { this.close(); }
  };

  LiveSource.prototype._openSse = function () {
    var self = this;
    var source = new EventSource(withLastId(this.url, this.lastId).toString());
    this._sse = source;
    this._use("sse");
    source.onopen = function () { self._opened(); };
    JOB_EVENTS.concat(["heartbeat"]).forEach(function (type) {
      source.addEventListener(type, function (event) {
        // A job's `error` frame is a MessageEvent; a broken connection is not.
        if (event instanceof MessageEvent) { self._deliver(type, event.data, event.lastEventId); }
      });
    });
    source.onerror = function (event) {
      if (event instanceof MessageEvent || self.readyState === CLOSED) { return; }
      self._failures += 1;
      self.readyState = CONNECTING;
      self._failed(event);
      // CLOSED: the server refused the stream (no retry by the browser).
      if (source.readyState === EventSource.CLOSED || self._failures >= SSE_ATTEMPTS) {
        source.close();
        self._sse = null;
        self._failures = 0;
        self._openSocket();
      }
    };
  };

  LiveSource.prototype._openSocket = function () {
    var self = this;
    if (!window.WebSocket || this.readyState === CLOSED) { return; }
    var socket = new WebSocket(socketUrl(this.url, this.lastId));
    this._socket = socket;
    this._use("websocket");
    socket.onopen = function () { self._opened(); };
    socket.onmessage = function (message) {
      var frame;
      try { frame = JSON.parse(message.data); } catch (e) { return; }
      if (!frame || !frame.event) { return; }
      var id = frame.id === undefined || frame.id === null ? "" : String(frame.id);
      self._deliver(frame.event, JSON.stringify(frame.data), id);
    };
    socket.onclose = function (event) {
      self._socket = null;
      if (self.readyState === CLOSED) { return; }
      if (event.code >= 4400 && event.code < 4500) {
        // Refused (logged out, no such job): reconnecting cannot help.
        self.readyState = CLOSED;
        self._failed(event);
        return;
      }
      if (self.singleJob && event.code === 1000) { self.readyState = CLOSED; return; }
      self._failures += 1;
      self.readyState = CONNECTING;
      self._failed(event);
      var delay = Math.min(30000, 500 * Math.pow(2, Math.min(self._failures, 6)));
      self._timer = window.setTimeout(function () { self._openSocket(); }, delay);
    };
  };

  window.LibrarianLiveSource = LiveSource;
  if (window.htmx) {
    htmx.createEventSource = function (url) { return new LiveSource(url); };
  }

  function jobChanged(jobId) {
    var card = jobId ? document.getElementById("job-" + jobId) : null;
    if (card) { htmx.trigger(card, "job-changed"); return; }
    // A job this page does not show yet (submitted elsewhere): reload the list.
    var list = document.querySelector("[data-job-list]");
    if (list) { htmx.trigger(list, "jobs-changed"); }
  }

  function followUserStream() {
    var url = document.body.getAttribute("data-user-stream");
    if (!url || !window.htmx) { return; }
    var source = new LiveSource(url);
    JOB_EVENTS.forEach(function (type) {
      source.addEventListener(type, function (event) {
        var data;
        try { data = JSON.parse(event.data); } catch (e) { return; }
        jobChanged(data && data.job_id);
      });
    });
    // Cards may have missed a re-fetch while the connection was down.
    source.addEventListener("reconnected", refreshLiveCards);
  }

  function refreshLiveCards() {
    var live = document.querySelectorAll(
      "[data-job-list] .job__inner--queued, [data-job-list] .job__inner--processing"
    );
    live.forEach(function (inner) {
      var card = inner.closest(".job");
      if (card) { htmx.trigger(card, "job-changed"); }
    });
  }

  // A list (or a page region holding one) rendered before an event but swapped
  // in after it shows that job as it was: fetch its unfinished cards again.
  document.addEventListener("htmx:afterSettle", function (event) {
    var elt = event.target;
    if (elt && elt.matches && (elt.matches("[data-job-list]") || elt.querySelector("[data-job-list]"))) {
      refreshLiveCards();
    }
  });

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", followUserStream);
  } else {
    followUserStream();
  }
})();
