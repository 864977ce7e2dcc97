% rebase('layout', title='Migration')
% import json
<h1>Migration</h1>
<p class="muted">Backups and restores run in the background on this server and go on when the browser is closed.</p>
% if note:
<p class="note">{{note}}</p>
% end

<section class="card" id="backups">
<h2>List of backups</h2>
% if not backups:
<p class="muted">No backups yet.</p>
% else:
<div class="table-scroll">
<table id="backup-list">
  <thead><tr><th>Name</th><th>Source</th><th>Flavour</th><th>State</th><th>Started</th><th>Finished</th><th class="num">Runtime</th><th class="num">Records</th><th class="num">Payloads</th><th class="num">On disk</th></tr></thead>
  <tbody>
% for b in backups:
    <tr data-backup="{{b['Name']}}">
      <td><a href="{{root}}{{b['Name']}}">{{b['Name']}}</a></td>
      <td>{{b['SourceURL']}}</td>
      <td>{{b['Flavour']}}</td>
      <td data-col="State">
% if b['Status']:
        <span class="state state-{{b['Status']}}">{{b['LastAction']}} {{b['Status']}}</span>
% else:
        <span class="muted">no job</span>
% end
      </td>
      <td>{{short_time(b['Created'])}}</td>
      <td data-col="Finished">{{short_time(b['Finished'])}}</td>
      <td class="num" data-col="Runtime">{{b['Runtime']}}</td>
      <td class="num" data-col="Records">{{'{:,}'.format(b['Records'])}}</td>
      <td class="num" data-col="Payloads">{{b['Payloads']}}</td>
      <td class="num" data-col="DiskUsed">{{human_size(b['DiskUsed'])}}</td>
    </tr>
% end
  </tbody>
</table>
</div>
% end
<p class="note" id="list-changed" hidden>Backups were added or removed: <a href="{{root}}">reload the list</a>.</p>
<p class="muted disk" id="disk">Data folder {{disk['Folder']}}: {{human_size(disk['Free'])}} free of {{human_size(disk['Total'])}}.</p>
</section>

<div class="forms">
<section class="card">
<h2 id="backup">Backup</h2>
<form method="post" action="{{root}}" id="backup-form" data-oauth data-existing="{{json.dumps([b['Name'] for b in backups])}}">
  <input type="hidden" name="csrf" value="{{csrf}}">
  <input type="hidden" name="action" value="backup">
% for f in backup_form:
%   include('_field', field=f, values=backup['values'], errors=backup['errors'], form_id='backup', choices=None, renames=[], renames_why='')
% end
  <p class="muted">Set in the background: {{fixed_text['backup']}}.</p>
  <div class="actions"><button type="submit">Backup</button></div>
</form>
</section>

<section class="card">
<h2 id="restore">Restore</h2>
% if not restore_choices:
<p class="muted">No finished backup to restore yet.</p>
% else:
<form method="post" action="{{root}}" id="restore-form" data-oauth>
  <input type="hidden" name="csrf" value="{{csrf}}">
  <input type="hidden" name="action" value="restore">
% for f in restore_form:
%   include('_field', field=f, values=restore['values'], errors=restore['errors'], form_id='restore', choices=restore_choices if f.name == 'backup' else None, renames=restore.get('renames', [('', '', '')]), renames_why=next((c[4] for c in restore_choices if c[0] == restore['values'].get('backup')), ''))
% end
% if restore['errors'].get('confirm_incomplete'):
  <label class="confirm"><input type="checkbox" name="confirm_incomplete" value="yes"> Restore this incomplete backup anyway: what it lacks will be missing on the target.</label>
% end
  <noscript><label class="confirm"><input type="checkbox" name="confirm_purge" value="yes"> I understand: Purge destroys all data and the datamodel on the target.</label></noscript>
  <p class="muted">Set in the background: {{fixed_text['restore']}}.</p>
  <div class="actions"><button type="submit">Restore</button></div>
</form>
% end
</section>
</div>

<script>
"use strict";
// The list keeps itself current: states, times and sizes every 5 s (the forms are left alone).
function refreshList() {
  fetch(location.pathname + "?accept=application/json", {credentials: "same-origin"})
    .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
    .then(function (data) {
      var rows = document.querySelectorAll("#backup-list tbody tr");
      var shown = Array.prototype.map.call(rows, function (tr) { return tr.dataset.backup; }).sort().join("/");
      var now = data.Backups.map(function (b) { return b.Name; }).sort().join("/");
      document.getElementById("list-changed").hidden = shown === now;
      data.Backups.forEach(function (b) {
        var tr = document.querySelector('#backup-list tr[data-backup="' + CSS.escape(b.Name) + '"]');
        if (!tr) { return; }
        var state = tr.querySelector('[data-col=State]');
        state.innerHTML = "";
        var badge = document.createElement("span");
        badge.className = b.Status ? "state state-" + b.Status : "muted";
        badge.textContent = b.Status ? b.LastAction + " " + b.Status : "no job";
        state.appendChild(badge);
        tr.querySelector('[data-col=Finished]').textContent = (b.Finished || "").replace("T", " ").replace("Z", " UTC");
        tr.querySelector('[data-col=Runtime]').textContent = b.Runtime;
        tr.querySelector('[data-col=Records]').textContent = b.Records.toLocaleString("en");
        tr.querySelector('[data-col=Payloads]').textContent = b.Payloads;
      });
    })
    .catch(function () {})
    .then(function () { setTimeout(refreshList, 5000); });
}
setTimeout(refreshList, 5000);
// OAuth2 client id and secret are only shown while OAuth2 is ticked.
document.querySelectorAll("form[data-oauth]").forEach(function (form) {
  var box = form.querySelector("input[name=oauth2]");
  function sync() { form.querySelectorAll(".oauth").forEach(function (el) { el.hidden = !box.checked; }); }
  box.addEventListener("change", sync);
  sync();
});

// Rename table: there is always one empty row at the end; filling it adds the next one.
var renames = document.querySelector("table.renames tbody");
function addRenameRow(cls, src, dst) {
  var tr = renames.rows[0].cloneNode(true);
  var inputs = tr.querySelectorAll("input");
  inputs[0].value = cls; inputs[1].value = src; inputs[2].value = dst;
  renames.appendChild(tr);
}
function keepEmptyRowAtEnd() {
  var last = renames.rows[renames.rows.length - 1];
  var filled = Array.prototype.some.call(last.querySelectorAll("input"), function (i) { return i.value.trim() !== ""; });
  if (filled) { addRenameRow("", "", ""); }
}
function prefillRenames(rows) {
  while (renames.rows.length > 1) { renames.deleteRow(renames.rows.length - 1); }
  renames.rows[0].querySelectorAll("input").forEach(function (i) { i.value = ""; });
  rows.forEach(function (row, index) {   // [class, version, new version], parsed by the server
    if (index === 0) {
      var inputs = renames.rows[0].querySelectorAll("input");
      inputs[0].value = row[0]; inputs[1].value = row[1]; inputs[2].value = row[2];
    } else { addRenameRow(row[0], row[1], row[2]); }
  });
  keepEmptyRowAtEnd();
}
if (renames) {
  renames.addEventListener("input", keepEmptyRowAtEnd);
  var backupSelect = document.querySelector("#restore-form select[name=backup]");
  backupSelect.addEventListener("change", function () {
    prefillRenames(JSON.parse(backupSelect.selectedOptions[0].dataset.renames || "[]"));
    document.getElementById("renames-why").textContent = backupSelect.selectedOptions[0].dataset.renamesWhy || "";
  });
}

// A restore with Purge destroys the target: ask first, and tell the server the user agreed.
var restoreForm = document.getElementById("restore-form");
if (restoreForm) {
  restoreForm.addEventListener("submit", function (event) {
    if (restoreForm.elements.mode.value !== "purge") { return; }
    var url = restoreForm.elements.server.value.trim();
    if (!url || !restoreForm.elements.login.value.trim() || !restoreForm.elements.password.value) { return; }  // the server names what is missing first
    if (!window.confirm('This will destroy all data on "' + url + '"!')) { event.preventDefault(); return; }
    var agreed = document.createElement("input");
    agreed.type = "hidden"; agreed.name = "confirm_purge"; agreed.value = "yes";
    restoreForm.appendChild(agreed);
  });
}

// Purging an existing backup deletes it: ask first.
var backupForm = document.getElementById("backup-form");
backupForm.addEventListener("submit", function (event) {
  var name = backupForm.elements.name.value.trim();
  var existing = JSON.parse(backupForm.dataset.existing);
  if (backupForm.elements.mode.value === "purge" && existing.indexOf(name) >= 0 &&
      !window.confirm('This will delete the backup "' + name + '" and start over!')) { event.preventDefault(); }
});
</script>
