<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>fylrmig – migration</title></head>
<body><h1>Migration</h1><p>fylrmig {{version}}</p>
% if not backups:
<p>No backups yet.</p>
% end
</body></html>
