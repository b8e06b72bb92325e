"""The live status page: one self-contained HTML document (inline CSS and script, SVG plot).

It loads nothing from the network, so it works through any tunnel and offline networks. Its script
polls /api/status every 2 s and /api/files for the chosen filter, and rewrites the page in place;
a failed poll shows "connection lost" and the next one recovers. Element ids are the test's contract:
#pct, #files, #bytes, #rate, #eta, #updates, #workers (rows carry data-state), #runs, #budget,
#plot, #errors, #files-table (rows carry data-state), #filter buttons (data-filter), #job (a choice of
migration, shown when the journal holds several).
"""

from __future__ import annotations

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>driveferry status</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:1em 2em;color:#222;background:#fafafa}
h1{font-size:20px;margin:.2em 0} h2{font-size:16px;margin:1.2em 0 .4em}
.bar{background:#ddd;border-radius:4px;height:18px;width:100%;max-width:900px}
.bar>div{background:#2a7;height:100%;border-radius:4px}
.big{font-size:28px;font-weight:600} .muted{color:#777}
.kpi{display:flex;gap:2em;flex-wrap:wrap;margin:.5em 0} .kpi div span{display:block;font-size:12px;color:#777}
table{border-collapse:collapse;max-width:1200px;width:100%;background:#fff}
th,td{border-bottom:1px solid #e3e3e3;padding:3px 8px;text-align:left;font-size:13px;vertical-align:top}
td.n{text-align:right;font-variant-numeric:tabular-nums}
tr[data-state=dead] td,tr[data-state=failed] td,tr[data-state=interrupted] td{color:#b00}
tr[data-state=alive] td:first-child,tr[data-state=running] td:first-child{color:#070}
button{margin-right:4px} button.on{background:#2a7;color:#fff;border:1px solid #2a7}
#conn{float:right} #plot{background:#fff;border:1px solid #ddd}
</style></head><body>
<span id="conn" class="muted">connecting...</span>
<h1>driveferry status <span id="jobname" class="muted"></span></h1>
<select id="job" hidden aria-label="migration"></select>
<div class="kpi">
 <div><span>progress</span><b id="pct" class="big">-</b></div>
 <div><span>files done</span><b id="files">-</b></div>
 <div><span>bytes done</span><b id="bytes">-</b></div>
 <div><span>rate</span><b id="rate">-</b></div>
 <div><span>ETA</span><b id="eta">-</b></div>
 <div><span>failed / unverified / waiting for quota</span><b id="problems">-</b></div>
</div>
<div class="bar"><div id="pctbar" style="width:0"></div></div>
<p class="muted">journal <span id="journal"></span> - <span id="updates">0</span> updates, last <span id="generated">-</span></p>
<h2>Upload rate (MiB/s)</h2>
<svg id="plot" width="900" height="160" viewBox="0 0 900 160" role="img" aria-label="upload rate over time"></svg>
<h2>Workers</h2><table id="workers"><thead><tr><th>state</th><th>worker</th><th>last beat</th><th>current file</th>
<th>sent</th><th>rate</th><th>why</th></tr></thead><tbody></tbody></table>
<h2>Runs (each run's own share)</h2><table id="runs"><thead><tr><th>state</th><th>run</th><th>worker</th><th>started</th>
<th>copied</th><th>skipped</th><th>failed</th><th>sent</th></tr></thead><tbody></tbody></table>
<h2>Daily upload budget (rolling 24 h)</h2><table id="budget"><thead><tr><th>destination user</th><th>used</th>
<th>cap</th><th>oldest counted leaves at</th></tr></thead><tbody></tbody></table>
<h2>Files</h2><div id="filter"></div>
<table id="files-table"><thead><tr><th>state</th><th>path</th><th>size</th><th>offset</th><th>attempts</th>
<th>last error</th></tr></thead><tbody></tbody></table>
<h2>Last errors</h2><table id="errors"><thead><tr><th>at</th><th>path</th><th>error</th></tr></thead><tbody></tbody></table>
<script>
"use strict";
const FILTERS=["in_flight","failed","unverified","waiting_for_quota","pending","done","all"];
let filter="in_flight", updates=0, jobId=0, chosen=null;
const $=id=>document.getElementById(id);
function size(n){if(n===null||n===undefined)return "-";const u=["B","KiB","MiB","GiB","TiB"];let i=0;
 while(Math.abs(n)>=1024&&i<u.length-1){n/=1024;i++}return (i?n.toFixed(1):n)+" "+u[i]}
function dur(s){if(s===null||s===undefined)return "unknown";s=Math.round(s);if(s<=0)return "done";
 const d=Math.floor(s/86400),h=Math.floor(s%86400/3600),m=Math.floor(s%3600/60);
 return (d?d+"d ":"")+(d||h?h+"h ":"")+m+"m "+(s%60)+"s"}
function cell(tr,text,cls){const td=document.createElement("td");td.textContent=text===null||text===undefined?"":String(text);
 if(cls)td.className=cls;tr.appendChild(td)}
function fill(id,rows,mk){const tb=$(id).tBodies[0];tb.textContent="";for(const r of rows){const tr=document.createElement("tr");
 mk(tr,r);tb.appendChild(tr)}}
function plot(job){const svg=$("plot"),W=900,H=160,P=30;let pts=[];
 const live=job.live&&job.live.samples||[];
 if(live.length>=3){for(let i=1;i<live.length;i++){const t0=Date.parse(live[i-1][0]),t1=Date.parse(live[i][0]);
  if(t1>t0)pts.push([t1,(live[i][1]-live[i-1][1])/((t1-t0)/1000)])}}
 else{for(const [at,n] of job.history)pts.push([Date.parse(at),n/60])}
 let s="";const max=Math.max(1,...pts.map(p=>p[1]));
 s+=`<line x1="${P}" y1="${H-P}" x2="${W}" y2="${H-P}" stroke="#999"/><text x="2" y="14" font-size="11">${(max/1048576).toFixed(2)}</text>`;
 if(pts.length){const t0=pts[0][0],t1=Math.max(pts[pts.length-1][0],t0+1);
  const xy=pts.map(p=>[P+(W-P-5)*(p[0]-t0)/(t1-t0),(H-P)-(H-P-10)*p[1]/max]);
  s+=`<polyline fill="none" stroke="#2a7" stroke-width="2" points="${xy.map(q=>q[0].toFixed(1)+","+q[1].toFixed(1)).join(" ")}"/>`;
  s+=`<text x="${P}" y="${H-10}" font-size="11">${new Date(t0).toISOString().slice(11,19)}</text>`;
  s+=`<text x="${W-60}" y="${H-10}" font-size="11">${new Date(t1).toISOString().slice(11,19)}</text>`}
 else s+=`<text x="${W/2-60}" y="${H/2}" font-size="12" fill="#777">no uploads yet</text>`;
 svg.setAttribute("data-points",String(pts.length));svg.innerHTML=s}
function choose(data){const sel=$("job");sel.hidden=data.jobs.length<2;
 if(sel.options.length!==data.jobs.length){sel.textContent="";for(const j of data.jobs){const o=document.createElement("option");
  o.value=String(j.job_id);o.textContent=j.job;sel.appendChild(o)}sel.onchange=()=>{chosen=Number(sel.value);tick(true)}}
 const job=data.jobs.find(j=>j.job_id===chosen)||data.jobs[0];if(job)sel.value=String(job.job_id);return job}
function render(data){const job=choose(data);$("journal").textContent=data.journal;$("generated").textContent=data.generated;
 $("updates").textContent=String(++updates);if(!job){$("jobname").textContent="(no migration yet)";return}
 jobId=job.job_id;const t=job.totals;$("jobname").textContent=job.job;
 $("pct").textContent=t.percent.toFixed(1)+"%";$("pctbar").style.width=Math.min(100,t.percent)+"%";
 $("files").textContent=t.files_done+" / "+t.files;$("bytes").textContent=size(t.bytes_done)+" of "+size(t.goal_bytes);
 const live=job.live&&job.live.rate_bytes_per_s;const rate=live!==null&&live!==undefined?live:t.rate_bytes_per_s;
 $("rate").textContent=size(rate)+"/s";
 const left=t.goal_bytes-t.bytes_done;$("eta").textContent=left<=0?"done":(rate>0?dur(left/rate):"unknown (no progress measured)");
 $("problems").textContent=t.files_failed+" / "+t.unverified+" / "+t.waiting_for_quota;
 fill("workers",job.workers,(tr,w)=>{tr.dataset.state=w.state;tr.dataset.worker=w.worker;cell(tr,w.state);cell(tr,w.worker);
  cell(tr,w.heartbeat_age_s+" s ago");cell(tr,w.current_item);cell(tr,size(w.bytes),"n");cell(tr,size(w.rate_bytes_per_s)+"/s","n");cell(tr,w.why)});
 fill("runs",job.runs,(tr,r)=>{tr.dataset.state=r.state;cell(tr,r.state);cell(tr,r.run.slice(0,8));cell(tr,r.worker);
  cell(tr,r.started.slice(0,19));cell(tr,r.copied,"n");cell(tr,r.skipped,"n");cell(tr,r.failed,"n");cell(tr,size(r.bytes_uploaded),"n")});
 fill("budget",job.budget,(tr,b)=>{cell(tr,b.user);cell(tr,size(b.bytes_24h),"n");
  cell(tr,b.limit_bytes?size(b.limit_bytes)+" ("+(100*b.bytes_24h/b.limit_bytes).toFixed(2)+"%)":"no cap","n");cell(tr,b.resets_at)});
 fill("errors",job.errors,(tr,e)=>{cell(tr,e.at.slice(0,19));cell(tr,e.path);cell(tr,e.kind+": "+e.message)});
 plot(job)}
function buttons(){const box=$("filter");box.textContent="";for(const f of FILTERS){const b=document.createElement("button");
 b.textContent=f.replace(/_/g," ");b.dataset.filter=f;if(f===filter)b.className="on";
 b.onclick=()=>{filter=f;buttons();files()};box.appendChild(b)}}
async function files(){try{const r=await fetch(`api/files?job=${jobId}&filter=${filter}&limit=500`,{cache:"no-store"});
 const d=await r.json();$("files-table").dataset.filter=d.filter||filter;
 fill("files-table",d.files||[],(tr,f)=>{tr.dataset.state=f.state;cell(tr,f.state.replace(/_/g," "));cell(tr,f.path);
  cell(tr,size(f.size),"n");cell(tr,size(f.offset),"n");cell(tr,f.attempts,"n");cell(tr,f.error)})}catch(e){}}
async function tick(once){try{const r=await fetch("api/status",{cache:"no-store"});if(!r.ok)throw new Error(r.status);
 render(await r.json());await files();$("conn").textContent="live";}catch(e){$("conn").textContent="connection lost, retrying"}
 if(!once)setTimeout(tick,2000)}
buttons();tick();
</script></body></html>
"""
