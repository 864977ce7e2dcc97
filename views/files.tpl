% rebase('layout', title=name + ' – files')
% parts = sub.split('/') if sub else []
<p><a href="{{root}}{{name}}">← {{name}}</a></p>
<h1>Files of {{name}}</h1>
<p class="muted">
  <a href="{{root}}{{name}}/files/">files</a>
% for i, part in enumerate(parts):
  / <a href="{{root}}{{name}}/files/{{quote('/'.join(parts[:i + 1]))}}/">{{part}}</a>
% end
</p>
<section class="card">
% include('_filelist', name=name, sub=sub, entries=entries, human_size=human_size)
</section>
