% rebase('layout', title=status)
<h1>{{status}}</h1>
<p class="problem">{{message}}</p>
<p><a href="{{root}}">Back to the list of backups</a></p>
