// Live progress of a migration's page: the run events `credvault run --json`
// prints, received as server-sent events.
(function () {
  const live = document.getElementById("live");
  const status = document.getElementById("live-status");
  const rows = document.querySelector("#progress tbody");
  const failures = document.getElementById("failures");
  const tables = new Map();

  function row(table) {
    let tr = tables.get(table);
    if (!tr) {
      tr = document.createElement("tr");
      tr.dataset.table = table;
      tr.innerHTML = '<td class="t"></td><td><div class="bar"><div></div></div></td>' +
        '<td class="pct">0%</td><td class="rows"></td><td class="rate"></td><td class="eta"></td><td class="errors">0</td>';
      tr.querySelector(".t").textContent = table;
      rows.appendChild(tr);
      tables.set(table, tr);
    }
    return tr;
  }

  function show(tr, done, total, rate, eta, errors) {
    const pct = total > 0 ? Math.min(100, Math.floor(done * 100 / total)) : 100;
    tr.querySelector(".bar > div").style.width = pct + "%";
    tr.querySelector(".pct").textContent = pct + "%";
    tr.querySelector(".rows").textContent = done.toLocaleString("en") + " / " + total.toLocaleString("en");
    tr.querySelector(".rate").textContent = Math.round(rate).toLocaleString("en");
    tr.querySelector(".eta").textContent = eta;
    tr.querySelector(".errors").textContent = errors;
  }

  // A progress row: the table, and for one source of several, which (a
  // consolidated table fills from each source in turn).
  function name(table, source) {
    return source ? table + " (from source `" + source + "`)" : table;
  }

  function seconds(eta) {
    return eta === null || eta === undefined ? "…" : Math.round(eta) + "s";
  }

  function say(text, kind) {
    status.textContent = text;
    status.className = kind;
  }

  const handlers = {
    action_started(e) {
      clear();
      say(e.action + " starting…", "warn");
    },
    run_started(e) {
      const what = (e.sync ? "sync " + e.sync + " of " + e.migration
                           : "run " + e.number + " of " + e.migration) +
                   (e.source ? " (source " + e.source + ")" : "");
      say(what + " running: " + e.tables + " table(s)" +
          (e.resumed_from ? ", resuming run " + e.resumed_from : ""), "warn");
    },
    table_started(e) { show(row(name(e.table, e.source)), e.resumed_at, e.total, 0, "…", 0); },
    table_skipped(e) {
      const tr = row(name(e.table, e.source));
      show(tr, 0, 0, 0, "—", 0);
      tr.querySelector(".eta").textContent = e.reason;
    },
    // Rate and ETA are the run's own pace (a resumed run's rows from before
    // took none of its time), over all key ranges of a split table.
    progress(e) {
      show(row(name(e.table, e.source)), e.done, e.total, e.rows_per_s, seconds(e.eta_s), e.errors);
    },
    table_finished(e) {
      const c = e.counts;
      show(row(name(e.table, e.source)), e.done, e.done, c.read / Math.max(e.elapsed_s, 1e-6), "done",
           c.skipped + c.flagged);
    },
    row_failed(e) {
      const f = e.failure;
      if (failures.children.length >= 20) failures.removeChild(failures.firstChild);
      const li = document.createElement("li");
      li.textContent = e.policy + ": " + name(f.table, e.source) + " row " + f.position + (f.key ? " (" + f.key + ")" : "") +
        ", " + f.stage + (f.column ? " column " + f.column : "") + ": " + f.message;
      failures.appendChild(li);
    },
    restore_point(e) { say("restore point " + e.name + " taken (" + e.rows + " rows)", "warn"); },
    run_finished(e) {
      say("run " + e.number + " " + e.status + (e.error ? ": " + e.error : ""), e.status === "succeeded" ? "good" : "bad");
    },
    validated(e) { say(status.textContent + "; validation " + (e.passed ? "passed" : "failed"), e.passed ? "good" : "bad"); },
    outcome(e) {
      say(e.message, e.ok ? "good" : "bad");
      live.dataset.outcome = e.ok ? "ok" : "failed";
      const more = document.createElement("a");
      more.href = location.pathname; more.id = "refresh"; more.textContent = " · refresh the page for its results";
      status.appendChild(more);
    },
  };

  function clear() { tables.clear(); rows.innerHTML = ""; failures.innerHTML = ""; }

  const source = new EventSource(live.dataset.events);
  // A stream that reconnects gets the whole state again: start from empty.
  source.onopen = clear;
  source.onmessage = (m) => {
    const e = JSON.parse(m.data);
    const handle = handlers[e.event];
    if (handle) handle(e);
  };
})();
