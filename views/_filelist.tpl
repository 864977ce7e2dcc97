% base = root + name + '/files/' + (quote(sub) + '/' if sub else '')
% if not entries:
<p class="muted">Empty folder.</p>
% else:
<div class="table-scroll">
<table class="files">
  <thead><tr><th>Name</th><th class="num">Size</th><th>Modified</th></tr></thead>
  <tbody>
% for e in entries:
    <tr><td><a href="{{base}}{{quote(e['Name'])}}{{'/' if e['IsDir'] else ''}}">{{e['Name']}}{{'/' if e['IsDir'] else ''}}</a></td><td class="num">{{'' if e['IsDir'] else human_size(e['Size'])}}</td><td>{{short_time(e['ModTime'])}}</td></tr>
% end
  </tbody>
</table>
</div>
% end
