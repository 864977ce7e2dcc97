<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{title}} – fylrmig</title>
<style>
  :root { --fg: #1f2933; --muted: #616e7c; --line: #d9dee5; --bg: #f7f8fa; --accent: #2456a6; }
  * { box-sizing: border-box; }
  body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: var(--bg); }
  header { background: #1f2d3d; color: #fff; padding: .7rem 1.5rem; display: flex; gap: 1rem; align-items: baseline; }
  header a { color: #fff; text-decoration: none; font-weight: 600; font-size: 1.1rem; }
  header span { color: #aab6c4; font-size: .85rem; }
  main { max-width: 1180px; margin: 0 auto; padding: 1rem 1.5rem 3rem; }
  h1 { font-size: 1.45rem; margin: 1rem 0 .5rem; } h2 { font-size: 1.15rem; margin: 1.6rem 0 .5rem; }
  a { color: var(--accent); }
  section.card { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: .8rem 1.1rem 1rem; margin: 1rem 0; }
  table { border-collapse: collapse; width: 100%; background: #fff; }
  th, td { text-align: left; padding: .35rem .6rem; border-bottom: 1px solid var(--line); vertical-align: top; }
  th { background: #eef1f5; font-weight: 600; font-size: .9rem; }
  td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
  .muted { color: var(--muted); }
  .state { display: inline-block; padding: .05rem .5rem; border-radius: 9px; font-size: .85rem; font-weight: 600; background: #e4e7eb; color: #3e4c59; }
  .state-running, .state-starting, .state-queued { background: #dbe9ff; color: #1c4f9c; }
  .state-done { background: #d9f2e1; color: #196a34; }
  .state-failed { background: #fbdada; color: #9b1c1c; }
  .state-interrupted { background: #fde9c8; color: #8a5300; }
  .state-cancelled { background: #e4e7eb; color: #3e4c59; }
  .forms { display: grid; grid-template-columns: repeat(auto-fit, minmax(min(430px, 100%), 1fr)); gap: 1rem; }
  .field { display: grid; grid-template-columns: 12rem 1fr; gap: .2rem .8rem; padding: .3rem 0; align-items: start; }
  .field > label { padding-top: .3rem; font-weight: 500; }
  .field .help { grid-column: 2; color: var(--muted); font-size: .82rem; }
  .field .error { grid-column: 2; color: #b42318; font-size: .88rem; font-weight: 600; }
  .field.has-error input, .field.has-error select { border-color: #b42318; }
  .field.check { grid-template-columns: 12rem 1fr; }
  input[type=text], input[type=password], select { width: 100%; padding: .35rem .45rem; border: 1px solid #b8c1cc; border-radius: 4px; font: inherit; background: #fff; }
  .renames input { width: 100%; padding: .25rem .35rem; border: 1px solid #b8c1cc; border-radius: 3px; font: inherit; }
  .renames td, .renames th { padding: .15rem .25rem; border: 0; background: none; }
  button, .button { font: inherit; padding: .4rem 1rem; border-radius: 4px; border: 1px solid var(--accent); background: var(--accent); color: #fff; cursor: pointer; text-decoration: none; display: inline-block; }
  button.secondary, .button.secondary { background: #fff; color: var(--accent); }
  button.danger { background: #b42318; border-color: #b42318; }
  .actions { margin-top: .8rem; display: flex; gap: .6rem; align-items: center; }
  pre.log { background: #111827; color: #e5e7eb; padding: .7rem; border-radius: 5px; max-height: 24rem; overflow: auto; font-size: .8rem; white-space: pre-wrap; word-break: break-word; }
  .note { background: #eef6ff; border: 1px solid #bcd6f5; padding: .5rem .8rem; border-radius: 5px; }
  .problem { background: #fff1f0; border: 1px solid #f3c1bc; padding: .5rem .8rem; border-radius: 5px; }
  .confirm { background: #fff7e6; border: 1px solid #f2d296; padding: .4rem .6rem; border-radius: 4px; margin-top: .4rem; }
  dl.facts { display: grid; grid-template-columns: 10rem 1fr; gap: .2rem 1rem; margin: .3rem 0; }
  dl.facts dt { color: var(--muted); } dl.facts dd { margin: 0; word-break: break-all; }
  .table-scroll { overflow-x: auto; max-width: 100%; }
  td { overflow-wrap: anywhere; }
  .overall { display: flex; gap: .6rem; align-items: center; flex-wrap: wrap; margin: .4rem 0; }
  progress { width: 100%; max-width: 28rem; height: 1rem; }
  .skip { position: absolute; left: -9999px; }
  .skip:focus { left: 1rem; top: .4rem; background: #fff; color: var(--accent); padding: .3rem .6rem; z-index: 9; }
  .disk { font-size: .88rem; }
  [hidden] { display: none !important; }
  @media (max-width: 640px) {   /* phones and narrow windows: labels above inputs, nothing wider than the screen */
    main { padding: .5rem .6rem 2rem; }
    header { padding: .6rem .8rem; flex-wrap: wrap; }
    .field, .field.check { grid-template-columns: 1fr; }
    .field .help, .field .error { grid-column: 1; }
    dl.facts { grid-template-columns: 1fr; }
    dl.facts dd { margin-bottom: .3rem; }
    th, td { padding: .3rem .35rem; }
    .actions { flex-wrap: wrap; }
  }
</style>
</head>
<body>
<a class="skip" href="#content">Skip to content</a>
<header><a href="{{root}}">fylrmig · migration</a><span>fylrmig {{version}}</span></header>
<main id="content" tabindex="-1">
{{!base}}
</main>
</body>
</html>
