% fid = form_id + '-' + field.name
% value = values.get(field.name, field.default)
% error = errors.get(field.name, '')
% described = ' '.join(x for x, on in ((fid + '-error', error), (fid + '-help', field.help)) if on)
% aria = ' aria-describedby="%s"' % described if described else ''
% aria = aria + (' aria-invalid="true"' if error else '')
<div class="field{{' check' if field.control == 'checkbox' else ''}}{{' has-error' if error else ''}}{{' oauth' if field.oauth else ''}}" data-field="{{field.name}}">
% if field.control == 'checkbox':
  <span></span>
  <label><input type="checkbox" name="{{field.name}}" id="{{fid}}"{{' checked' if value else ''}}{{!aria}}> {{field.label}}</label>
% else:
  <label for="{{fid}}">{{field.label}}</label>
%   if field.control == 'select':
  <select name="{{field.name}}" id="{{fid}}"{{!aria}}>
%     for opt in (choices if choices is not None else field.choices):
%       selected = ' selected' if str(opt[0]) == str(value) else ''
%       if len(opt) > 2:
    <option value="{{opt[0]}}"{{selected}} data-renames="{{opt[2]}}" data-renames-why="{{opt[4] if len(opt) > 4 else ''}}">{{opt[1]}}</option>
%       else:
    <option value="{{opt[0]}}"{{selected}}>{{opt[1]}}</option>
%       end
%     end
  </select>
%   elif field.control == 'renames':
  <table class="renames" id="{{fid}}">
    <thead><tr><th>File class</th><th>Source version</th><th>Target version</th></tr></thead>
    <tbody>
%     for cls, src, dst in renames:
      <tr><td><input name="rv_class" value="{{cls}}" aria-label="File class"></td><td><input name="rv_source" value="{{src}}" aria-label="Source version"></td><td><input name="rv_target" value="{{dst}}" aria-label="Target version"></td></tr>
%     end
    </tbody>
  </table>
  <div class="help" id="renames-why">{{renames_why}}</div>
%   elif field.control == 'versions':
  <input type="text" name="{{field.name}}" id="{{fid}}" value="{{value}}" list="{{fid}}-list"{{!aria}}>
  <datalist id="{{fid}}-list"><option value="original"><option value="preview"><option value="small"><option value="full"><option value="huge"></datalist>
%   elif field.control == 'password':
  <input type="password" name="{{field.name}}" id="{{fid}}" value="" placeholder="{{field.placeholder}}" autocomplete="off"{{!aria}}>
%   else:
  <input type="text" name="{{field.name}}" id="{{fid}}" value="{{value}}" placeholder="{{field.placeholder}}"{{!aria}}>
%   end
% end
% if error:
  <div class="error" role="alert" id="{{fid}}-error">{{error}}</div>
% end
% if field.help:
  <div class="help" id="{{fid}}-help">{{field.help}}</div>
% end
</div>
