% rebase('layout', title=item['Name'])
% name = item['Name']
<p><a href="{{root}}">← List of backups</a></p>
<h1>{{name}}</h1>
% if note:
<p class="note">{{note}}</p>
% end
<p class="problem" id="lost" role="alert" hidden>Connection to fylrmig lost: what this page shows may be out of
date. It reconnects by itself.</p>
<section class="card">
<dl class="facts">
  <dt>Source</dt><dd data-item="SourceURL">{{item['SourceURL']}}</dd>
  <dt>Flavour</dt><dd data-item="Flavour">{{item['Flavour']}}</dd>
  <dt>Created</dt><dd data-item="Created">{{item['Created']}}</dd>
  <dt>Records</dt><dd data-item="Records">{{item['Records']}}</dd>
  <dt>Size</dt><dd data-item="Size">{{human_size(item['Size'])}}</dd>
  <dt>Folder</dt><dd>{{item['Dir']}}</dd>
</dl>
<div class="actions">
  <span id="restore-link"{{'' if item['HasManifest'] else ' hidden'}}><a class="button secondary" href="{{root}}?restore={{name}}#restore">Restore this backup</a></span>
  <a class="button secondary" id="download" href="{{root}}{{name}}/download">Download (ZIP)</a>
  <form method="post" action="{{root}}{{name}}/delete" id="delete-form" data-name="{{name}}"{{' hidden' if live['Active'] else ''}}>
    <input type="hidden" name="csrf" value="{{csrf}}"><input type="hidden" name="confirm_delete" value="">
    <button type="submit" class="danger">Delete backup</button>
  </form>
</div>
</section>

% for kind in ('backup', 'restore'):
%   job = live['Jobs'][kind] or {}
%   state = job.get('State', '')
<section class="card job" id="job-{{kind}}" data-kind="{{kind}}"{{' hidden' if not job and not live['Logs'][kind] else ''}}>
  <h2>{{kind.capitalize()}} <span class="state state-{{state}}">{{state or 'no job'}}</span></h2>
  <dl class="facts">
    <dt>Server</dt><dd data-k="Server">{{job.get('Server', '')}}</dd>
    <dt>Started</dt><dd data-k="Started">{{job.get('Started', '')}}</dd>
    <dt>Finished</dt><dd data-k="Finished">{{job.get('Finished', '')}}</dd>
    <dt>Runtime</dt><dd data-k="Runtime">{{job.get('Runtime', '')}}</dd>
    <dt>Phase</dt><dd data-k="Phase">{{job.get('Phase', '')}}</dd>
    <dt>Now</dt><dd data-k="Step">{{job.get('Step', '')}}</dd>
    <dt>Files</dt><dd data-k="FilesText">{{job.get('FilesText', '')}}</dd>
%   if kind == 'restore':
    <dt>Not restored</dt><dd data-k="NotRestoredText" class="problem-text">{{job.get('NotRestoredText', '')}}</dd>
%   end
    <dt>Error</dt><dd data-k="Error" class="problem-text">{{job.get('Error', '')}}</dd>
  </dl>
%   overall = job.get('Overall') or {}
  <div class="overall">
    <progress max="100" value="{{overall.get('Percent', 0)}}" aria-label="{{kind}} progress"></progress>
    <span class="overall-text">{{'%s%% (%s of %s)' % (overall.get('Percent', 0), '{:,}'.format(overall.get('Done', 0)), '{:,}'.format(overall.get('Total', 0))) if overall.get('Total') else ''}}{{(', ETA ' + overall['ETA']) if overall.get('ETA') else ''}}</span>
  </div>
  <div class="table-scroll">
  <table class="progress">
    <thead><tr><th>Phase</th><th class="num">Done</th><th class="num">Total</th><th class="num">Rate /s</th><th class="num">ETA</th></tr></thead>
    <tbody class="phases">
% for p in job.get('Phases', []):
      <tr{{' class=active' if p['Active'] else ''}}><td>{{p['Name']}}</td><td class="num">{{p['Done']}}</td><td class="num">{{p['Total'] or ''}}</td><td class="num">{{p['Rate']}}</td><td class="num">{{p['ETA']}}</td></tr>
% end
    </tbody>
  </table>
  </div>
  <div class="actions">
    <form method="post" action="{{root}}{{name}}/cancel" class="cancel"{{'' if state in active_states else ' hidden'}}>
      <input type="hidden" name="csrf" value="{{csrf}}"><input type="hidden" name="kind" value="{{kind}}">
      <button type="submit" class="danger">Cancel</button>
    </form>
    <a class="button continue" href="{{root}}{{name}}/continue?kind={{kind}}"{{'' if job.get('CanContinue') else ' hidden'}}>Continue</a>
    <a href="{{root}}{{name}}/{{kind}}.log">full log</a>
  </div>
  <h3>Log <span class="muted">(last 64 KB, live)</span></h3>
  <pre class="log">{{live['Logs'][kind]}}</pre>
</section>
% end

% restored = (live['Jobs']['restore'] or {}).get('State') == 'done'
% check = live.get('Check') or {}
% if restored or check:
<section class="card" id="check">
  <h2>Check <span class="state state-{{check.get('State', '')}}">{{check.get('State') or 'not run'}}</span></h2>
  <p class="help">Compares the target with the source, read-only, line by line (fylrmig check): records, versions,
  users, groups, pools, tags, collections, messages, files and events; what is missing is named. The passwords
  are asked every time and never stored.</p>
%   if restored:
  <form method="post" action="{{root}}{{name}}/check" class="check-form">
    <input type="hidden" name="csrf" value="{{csrf}}">
%     for field, label in check_labels.items():
%       secret = field.endswith('password')
    <label for="check-{{field}}">{{label}}</label>
    <input id="check-{{field}}" name="{{field}}" type="{{'password' if secret else 'text'}}" value="{{'' if secret else check_form.get(field, '')}}" autocomplete="{{'off' if secret else 'on'}}" required>
%     end
    <label><input type="checkbox" name="deep" value="yes"> also compare file sizes and checksums (--deep)</label>
    <button type="submit">Check</button>
  </form>
%   end
  <dl class="facts">
    <dt>Started</dt><dd data-c="Started">{{check.get('Started', '')}}</dd>
    <dt>Finished</dt><dd data-c="Finished">{{check.get('Finished', '')}}</dd>
    <dt>Problem</dt><dd data-c="Error" class="problem-text">{{check.get('Error', '')}}</dd>
  </dl>
  <pre class="check-report" data-c="Report">{{check.get('Report', '')}}</pre>
</section>
% end

<section class="card">
<h2>Payloads <span class="muted" id="payload-count">({{len(live['Payloads'])}})</span></h2>
<div class="table-scroll">
<table id="payloads">
  <thead><tr><th>Payload</th><th>Type</th><th class="num">Count</th><th class="num">Size</th></tr></thead>
  <tbody>
% for p in live['Payloads']:
    <tr><td>{{p['Name']}}</td><td>{{p['Type']}}</td><td class="num">{{p['Count']}}</td><td class="num">{{human_size(p['Size'])}}</td></tr>
% end
  </tbody>
</table>
</div>
</section>

% if item['HasFiles']:
<section class="card">
<h2>Files</h2>
%   include('_filelist', name=name, sub='', entries=files, human_size=human_size)
</section>
% end

<div id="live" data-url="{{root}}{{name}}/live" data-active="{{json_text(list(active_states))}}" hidden></div>
<script>
"use strict";
var ACTIVE = JSON.parse(document.getElementById("live").dataset.active);
var LIVE_URL = document.getElementById("live").dataset.url;
function humanSize(n) {
  var units = ["B", "KB", "MB", "GB", "TB"], i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return i === 0 ? n + " B" : n.toFixed(1) + " " + units[i];
}
function cell(text, cls) {
  var td = document.createElement("td");
  td.textContent = text === null || text === undefined ? "" : String(text);
  if (cls) { td.className = cls; }
  return td;
}
function row(cells) {
  var tr = document.createElement("tr");
  cells.forEach(function (c) { tr.appendChild(c); });
  return tr;
}
function showCheck(check) {
  var sec = document.getElementById("check");
  if (!sec || !check) { return; }
  var badge = sec.querySelector("h2 .state");
  badge.textContent = check.State || "not run";
  badge.className = "state state-" + (check.State || "");
  sec.querySelectorAll("[data-c]").forEach(function (el) { el.textContent = check[el.dataset.c] || ""; });
}
function showJob(kind, job, log) {
  var sec = document.getElementById("job-" + kind);
  sec.hidden = !job && !log;
  job = job || {};
  var badge = sec.querySelector("h2 .state");
  badge.textContent = job.State || "no job";
  badge.className = "state state-" + (job.State || "");
  sec.querySelectorAll("[data-k]").forEach(function (el) { el.textContent = job[el.dataset.k] || ""; });
  sec.querySelector("tbody.phases").replaceChildren.apply(sec.querySelector("tbody.phases"), (job.Phases || []).map(function (p) {
    var tr = row([cell(p.Name), cell(p.Done, "num"), cell(p.Total || "", "num"), cell(p.Rate, "num"), cell(p.ETA, "num")]);
    if (p.Active) { tr.className = "active"; }
    return tr;
  }));
  var overall = job.Overall || {};
  sec.querySelector(".overall progress").value = overall.Percent || 0;
  sec.querySelector(".overall-text").textContent = overall.Total ?
    overall.Percent + "% (" + overall.Done.toLocaleString("en") + " of " + overall.Total.toLocaleString("en") + ")" +
    (overall.ETA ? ", ETA " + overall.ETA : "") : "";
  sec.querySelector("form.cancel").hidden = ACTIVE.indexOf(job.State) < 0;
  sec.querySelector("a.continue").hidden = !job.CanContinue;
  var pre = sec.querySelector("pre.log");
  var atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 8;
  if (pre.textContent !== log) { pre.textContent = log; if (atEnd) { pre.scrollTop = pre.scrollHeight; } }
}
function showPayloads(payloads) {
  var tbody = document.querySelector("#payloads tbody");
  tbody.replaceChildren.apply(tbody, payloads.map(function (p) {
    return row([cell(p.Name), cell(p.Type), cell(p.Count, "num"), cell(humanSize(p.Size || 0), "num")]);
  }));
  document.getElementById("payload-count").textContent = "(" + payloads.length + ")";
}
function showItem(item) {
  document.querySelectorAll("[data-item]").forEach(function (el) {
    var value = item[el.dataset.item];
    el.textContent = el.dataset.item === "Size" ? humanSize(value || 0) : (value === undefined ? "" : String(value));
  });
  document.getElementById("restore-link").hidden = !item.HasManifest;
}
function poll() {
  fetch(LIVE_URL, {headers: {"Accept": "application/json"}, credentials: "same-origin"})
    .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
    .then(function (live) {
      ["backup", "restore"].forEach(function (k) { showJob(k, live.Jobs[k], live.Logs[k]); });
      showCheck(live.Check);
      showPayloads(live.Payloads);
      showItem(live.Item);
      document.body.dataset.active = live.Active ? "yes" : "no";
      document.getElementById("delete-form").hidden = live.Active;
      document.getElementById("lost").hidden = true;
      setTimeout(poll, live.Active ? 1000 : 4000);
    })
    .catch(function () {
      document.getElementById("lost").hidden = false;      // serve stopped or the network is gone
      setTimeout(poll, 3000);
    });
}
document.querySelectorAll("pre.log").forEach(function (pre) { pre.scrollTop = pre.scrollHeight; });
document.querySelectorAll("form.cancel").forEach(function (form) {
  form.addEventListener("submit", function (event) {
    if (!window.confirm("Cancel this job? It stops after its current chunk; Continue finishes it later.")) { event.preventDefault(); }
  });
});
var deleteForm = document.getElementById("delete-form");
deleteForm.addEventListener("submit", function (event) {
  if (!window.confirm('Delete the backup "' + deleteForm.dataset.name + '" and all its files? This cannot be undone.')) {
    event.preventDefault(); return;
  }
  deleteForm.elements.confirm_delete.value = "yes";
});
setTimeout(poll, 1000);
</script>
