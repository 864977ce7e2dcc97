% rebase('layout', title='Continue ' + name)
<p><a href="{{root}}{{name}}">← {{name}}</a></p>
<h1>Continue the {{kind}} of {{name}}</h1>
<p class="muted">The {{kind}} goes on with the parameters of its previous run; done chunks are skipped. Only the secrets are asked for again.</p>
<section class="card">
<table>
  <thead><tr><th>Parameter</th><th>Value</th></tr></thead>
  <tbody>
% for key, value in params:
    <tr><td>{{key}}</td><td>{{value}}</td></tr>
% end
  </tbody>
</table>
<form method="post" action="{{root}}{{name}}/continue" id="continue-form">
  <input type="hidden" name="csrf" value="{{csrf}}">
  <input type="hidden" name="kind" value="{{kind}}">
% for field in secret_fields:
  <div class="field{{' has-error' if errors.get(field) else ''}}">
    <label for="continue-{{field}}">{{labels[field]}}</label>
    <input type="password" name="{{field}}" id="continue-{{field}}" value="" autocomplete="off">
%   if errors.get(field):
    <div class="error" role="alert">{{errors[field]}}</div>
%   end
  </div>
% end
  <div class="actions"><button type="submit">Continue {{kind}}</button></div>
</form>
</section>
