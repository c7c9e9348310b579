"""What a drill report shows, in English and Chinese: every figure once, with its
definition and unit, rounded to the millisecond; nothing shown that was not measured.

The Markdown and HTML templates only lay out what `build` returns, so both formats and
both languages say the same thing.
"""
from __future__ import annotations

import datetime as dt
import re
from typing import Any

from markupsafe import Markup, escape

from dr.touched import drilled_row

UTC8 = dt.timezone(dt.timedelta(hours=8), "UTC+8")

TEXT: dict[str, dict[str, str]] = {
    "en": {
        "lang": "en", "heading": "Drill report: {scenario} on {system}",
        "verdict": "Verdict", "passed": "PASSED", "not_measured": "not measured",
        "none": "—", "yes": "YES", "no": "no",
        "figures": "Figures", "figure": "figure", "measured": "measured", "target": "target",
        "definition": "definition",
        "rto_fault": "RTO from the fault",
        "rto_fault_def": "fault → first acknowledged write after which writes through the "
                         "read-write endpoint stay up (database channel)",
        "rto_declaration": "RTO from the disaster declaration",
        "rto_declaration_def": "declaration → first acknowledged write; the human decision "
                               "time before the declaration is excluded",
        "rto_app": "RTO through the app entry",
        "rto_app_def": "fault → writes through the application's entry stay up (app channel)",
        "rto_read": "read RTO",
        "rto_read_def": "fault → reads through the read-only endpoint stay up",
        "write_gap": "longest gap without an acknowledged write",
        "write_gap_def": "during the fault, database channel",
        "failback_gap": "longest write gap during failback",
        "failback_gap_def": "while the original layout is restored (database channel)",
        "lost": "acknowledged writes lost",
        "lost_def": "acknowledged to the client, missing when the ledger was read back",
        "rpo": "RPO",
        "rpo_def": "age at the fault of the oldest lost acknowledged write (0 s: none lost)",
        "acked": "acknowledged writes / failed attempts",
        "acked_def": "database channel, whole drill",
        "duplicates": "duplicate writes", "split_brain": "split brain",
        "lag": "async replication lag just before the fault",
        "writes": "writes", "events": "events",
        "judged": "judged", "rpo_zero": "0 writes (RPO 0 s)",
        "level": "GB/T 20988{edition} level",
        "level_claimed": "level {level} reached: {name}",
        "level_none": "no level stated",
        "tier_level": "tier {tier} promises level {level}",
        "judged_note": "The RTO target is judged against: {label}.",
        "declared_note": "A disaster was declared: the RTO judged counts from the declaration, so the "
                         "time people took to decide is excluded; the RTO from the fault includes it.",
        "criteria": "Criteria", "criterion": "criterion", "ok": "ok",
        "touched": "Every system the fault touched",
        "touched_note": "Each judged against its own tier; the drill's recovery steps are the "
                        "first system's, the others are only observed.",
        "system": "system", "tier": "tier", "rto": "RTO", "touched_lost": "acknowledged writes lost",
        "touched_level": "GB/T 20988 level", "note": "note",
        "touched_summary": "{passed} of {systems} systems passed; worst RTO {worst}; {lost} acknowledged writes lost",
        "timeline": "Timeline", "steps": "Steps",
        "step_start": "start (UTC+8)", "step_from_fault": "from the fault: start → end",
        "took": "took", "phase": "phase", "action": "action", "detail": "detail",
        "see_details": "full text in Details, item {n}",
        "who": "Who acknowledged writes (database channel only)",
        "who_note": "The app channel goes through the application entry, which does not say "
                    "which database member answered; it is counted in the RTO through the app entry.",
        "node": "node", "timeline_col": "timeline",
        "split_evidence": "Split brain evidence", "left_to_do": "Left to do by hand",
        "restored": "Restored when the drill stopped",
        "alerts": "Alerts", "alert": "alert", "fired_after": "fired after the fault",
        "resolved_after": "resolved after the fault", "never_fired": "never fired",
        "not_resolved": "not resolved", "alert_missing": "Expected alert {name} never fired.",
        "details": "Details", "context": "Context",
        "environment": "environment", "runtime": "runtime inventory", "inventory": "inventory",
        "tiers_file": "tiers file (targets)", "patroni_profile": "Patroni profile",
        "network_mode": "network mode", "tricenter": "tricenter version", "commit": "commit",
        "components": "component versions", "started": "started", "finished": "finished",
        "recovered_in": "writes came back in", "run": "run id",
        "ledger": "The full write ledger is in ledger.jsonl.",
        "other_language": "中文版", "other_file": "report.zh",
        "lab": "lab (processes on one machine; not production)", "production": "production",
        "unknown": "unknown",
    },
    "zh": {
        "lang": "zh-CN", "heading": "演练报告：{system} 的 {scenario}",
        "verdict": "结论", "passed": "通过", "not_measured": "未测得",
        "none": "—", "yes": "是", "no": "否",
        "figures": "测量结果", "figure": "指标", "measured": "实测", "target": "目标",
        "definition": "定义",
        "rto_fault": "RTO（自故障起）",
        "rto_fault_def": "故障发生 → 此后经读写入口的写入持续成功的第一次确认写入（数据库通道）",
        "rto_declaration": "RTO（自宣布灾难起）",
        "rto_declaration_def": "宣布灾难 → 第一次确认写入；不含宣布前人工决策的时间",
        "rto_app": "RTO（经应用入口）",
        "rto_app_def": "故障发生 → 经应用入口的写入持续成功（应用通道）",
        "rto_read": "只读 RTO", "rto_read_def": "故障发生 → 经只读入口的读取持续成功",
        "write_gap": "无确认写入的最长间隔", "write_gap_def": "故障期间，数据库通道",
        "failback_gap": "回切期间最长写入间隔", "failback_gap_def": "恢复原有布局期间（数据库通道）",
        "lost": "丢失的已确认写入", "lost_def": "已向客户端确认、回读账本时缺失的写入",
        "rpo": "RPO", "rpo_def": "丢失的最早一次已确认写入在故障时的时长（0 秒：无丢失）",
        "acked": "已确认写入 / 失败尝试", "acked_def": "数据库通道，整个演练",
        "duplicates": "重复写入", "split_brain": "脑裂",
        "lag": "故障前的异步复制延迟",
        "writes": "次写入", "events": "个事件",
        "judged": "考核", "rpo_zero": "0 次写入（RPO 0 秒）",
        "level": "GB/T 20988{edition} 灾难恢复能力等级",
        "level_claimed": "达到第 {level} 级：{name}",
        "level_none": "不给出等级",
        "tier_level": "保护级别 {tier} 承诺第 {level} 级",
        "judged_note": "RTO 目标按以下指标考核：{label}。",
        "declared_note": "本次演练宣布了灾难：考核的 RTO 自宣布时起算，不含人工决策时间；自故障起的 RTO 包含该时间。",
        "criteria": "考核项", "criterion": "考核项", "ok": "结果",
        "touched": "本次故障波及的全部系统",
        "touched_note": "每个系统按其自身等级判定；演练的恢复步骤针对第一个系统，其余系统仅观测。",
        "system": "系统", "tier": "等级", "rto": "RTO", "touched_lost": "丢失的已确认写入",
        "touched_level": "GB/T 20988 等级", "note": "说明",
        "touched_summary": "{systems} 个系统中 {passed} 个通过；最长 RTO {worst}；丢失已确认写入 {lost} 笔",
        "timeline": "时间线", "steps": "步骤",
        "step_start": "开始（北京时间 UTC+8）", "step_from_fault": "相对故障：开始 → 结束",
        "took": "耗时", "phase": "阶段", "action": "动作", "detail": "说明",
        "see_details": "全文见“详情”第 {n} 条",
        "who": "由谁确认写入（仅数据库通道）",
        "who_note": "应用通道经应用入口写入，无法得知由哪个数据库成员应答；它计入“经应用入口的 RTO”。",
        "node": "节点", "timeline_col": "时间线",
        "split_evidence": "脑裂证据", "left_to_do": "需人工处理的事项",
        "restored": "演练停止时已恢复",
        "alerts": "告警", "alert": "告警", "fired_after": "故障后触发", "resolved_after": "故障后恢复",
        "never_fired": "未触发", "not_resolved": "未恢复", "alert_missing": "预期告警 {name} 未触发。",
        "details": "详情", "context": "演练环境",
        "environment": "环境", "runtime": "运行时清单", "inventory": "资源清单",
        "tiers_file": "等级文件（目标来源）", "patroni_profile": "Patroni 参数档",
        "network_mode": "网络模式", "tricenter": "tricenter 版本", "commit": "提交",
        "components": "组件版本", "started": "开始", "finished": "结束",
        "recovered_in": "写入恢复于", "run": "运行编号",
        "ledger": "完整写入账本见 ledger.jsonl。",
        "other_language": "English", "other_file": "report",
        "lab": "实验环境（单机进程，非生产）", "production": "生产环境",
        "unknown": "未知",
    },
}

STATUS_ZH = {"failed": "未通过", "aborted": "已中止", "error": "出错", "skipped": "已跳过",
             "passed": "通过", "running": "运行中"}
CRITERIA_ZH = {"rto_seconds": "RTO", "app_rto_seconds": "应用入口 RTO", "rpo_seconds": "RPO",
               "rpo_lost_writes": "丢失的已确认写入", "max_write_gap_seconds": "最长写入间隔",
               "split_brain": "脑裂", "duplicate_writes": "重复写入"}
_CODE = re.compile(r"`([^`\n]+)`")


def code_spans(text: Any) -> Markup:
    """Escape text for HTML, then show `backticked` words as code rather than backticks."""
    return Markup(_CODE.sub(lambda m: f"<code>{m.group(1)}</code>", str(escape(text))))


def fence_for(text: str) -> str:
    """A Markdown fence longer than any run of backticks inside the text."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def md_cell(text: Any) -> str:
    """Text that stays inside one Markdown table cell."""
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def seconds(x: float | None, t: dict[str, str]) -> str:
    return t["not_measured"] if x is None else f"{x:.3f} s"


def clock(iso: str | None, tz: dt.tzinfo) -> str:
    if not iso:
        return "—"
    return dt.datetime.fromisoformat(iso).astimezone(tz).isoformat(timespec="milliseconds")


def _since(x: float | None) -> str:
    return "—" if x is None else f"T{x:+.3f} s"


class _Details:
    """Multi-line texts (tracebacks, command output), fenced in a Details section; a table
    cell or the verdict line only shows their first line."""

    def __init__(self, t: dict[str, str]):
        self.t, self.blocks = t, []

    def short(self, text: str | None) -> str:
        text = (text or "").strip()
        if "\n" not in text:
            return text
        self.blocks.append(text)
        first = text.splitlines()[0]
        return f"{first} ({self.t['see_details'].format(n=len(self.blocks))})"


def _figures(r: dict, t: dict[str, str], zh: bool) -> list[dict]:
    targets = r.get("targets") or {}
    judged_key = "rto_declaration" if r.get("rto_from") == "declaration" else "rto_fault"
    rows = []

    def row(key: str, measured: str, target: str = "—", show: bool = True) -> None:
        if show:
            label = t[key] + (f" ({t['judged']})" if key == judged_key and targets.get("rto_seconds") else "")
            rows.append({"label": label, "measured": measured, "target": target,
                         "definition": t[key + "_def"] if key + "_def" in t else ""})

    rto_target = seconds(targets.get("rto_seconds"), t) if targets.get("rto_seconds") else "—"
    row("rto_fault", seconds(r.get("rto_seconds"), t), rto_target if judged_key == "rto_fault" else "—")
    row("rto_declaration", seconds(r.get("rto_from_declaration_seconds"), t),
        rto_target if judged_key == "rto_declaration" else "—",
        show=r.get("rto_from") == "declaration" or r.get("rto_from_declaration_seconds") is not None)
    row("rto_app", seconds(r.get("app_rto_seconds"), t), show=r.get("app_rto_seconds") is not None)
    row("rto_read", seconds(r.get("read_rto_seconds"), t), show=r.get("read_rto_seconds") is not None)
    gap_target = targets.get("max_write_gap_seconds")
    row("write_gap", seconds(r.get("max_write_gap_seconds"), t),
        seconds(gap_target, t) if gap_target is not None else "—")
    row("failback_gap", seconds(r.get("failback_max_write_gap_seconds"), t),
        show=r.get("failback_max_write_gap_seconds") is not None)
    rpo_target = targets.get("rpo_seconds")
    row("lost", f"{r.get('rpo_lost_writes', 0)} {t['writes']}", t["rpo_zero"] if rpo_target == 0 else "—")
    row("rpo", seconds(r.get("rpo_seconds"), t), seconds(rpo_target, t) if rpo_target is not None else "—")
    row("acked", f"{r.get('acknowledged_writes', 0)} / {r.get('failed_attempts', 0)}")
    row("duplicates", f"{r.get('duplicate_writes', 0)} {t['writes']}", f"0 {t['writes']}")
    row("split_brain", t["yes"] if r.get("split_brain") else t["no"], t["no"])
    row("lag", seconds(r.get("replication_lag_before_fault_seconds"), t),
        show=r.get("replication_lag_before_fault_seconds") is not None)
    return rows


def _criterion(c: dict, t: dict[str, str], zh: bool) -> dict:
    def value(x: Any) -> str:
        if x is None:
            return t["not_measured"]
        if isinstance(x, bool):
            return t["yes"] if x else t["no"]
        unit = c.get("unit")
        if unit == "s":
            return seconds(float(x), t)
        return f"{x} {t[unit]}" if unit in ("writes", "events") else str(x)
    name = c["name"]
    label = (CRITERIA_ZH.get(name, name) if zh else name)
    return {"label": label, "measured": value(c["measured"]), "target": value(c["target"]),
            "ok": c["ok"]}


def _context(r: dict, t: dict[str, str]) -> list[tuple[str, str]]:
    c = r.get("context") or {}
    env = c.get("environment")
    rows = [(t["environment"], t.get(env, env or t["unknown"])),
            (t["runtime"], c.get("runtime_inventory") or t["unknown"]),
            (t["tiers_file"], c.get("tiers_file") or t["unknown"])]
    if c.get("inventory"):  # reports of drills that read the targets from the topology
        rows.insert(2, (t["inventory"], c["inventory"]))
    if c.get("patroni_profile"):
        rows.append((t["patroni_profile"], c["patroni_profile"]))
    if c.get("network_mode"):
        rows.append((t["network_mode"], c["network_mode"]))
    rows += [(t["tricenter"], c.get("tricenter") or t["unknown"]),
             (t["commit"], c.get("commit") or t["unknown"])]
    components = c.get("components") or {}
    if components:
        rows.append((t["components"], ", ".join(f"{k} {v or t['unknown']}" for k, v in components.items())))
    for key in ("started", "finished"):
        iso = r.get(f"{key}_at")
        rows.append((t[key], f"{clock(iso, dt.timezone.utc)} (UTC) = {clock(iso, UTC8)} (UTC+8)"))
    if r.get("recovered_in"):
        rows.append((t["recovered_in"], r["recovered_in"]))
    rows.append((t["run"], r.get("run_id") or "—"))
    return rows


def _level(r: dict, t: dict[str, str]) -> dict:
    level = r.get("gbt20988_level")
    targets = r.get("targets") or {}
    tier_level = targets.get("gbt20988_level")
    edition = r.get("gbt20988_edition")
    notes = [n for n in (r.get("gbt20988_level_note"), r.get("gbt20988_table_note")) if n]
    return {"label": t["level"].format(edition=f"-{edition}" if edition else ""),
            "text": t["level_claimed"].format(level=level, name=r.get("gbt20988_level_name"))
            if level else t["level_none"],
            "reading": r.get("gbt20988_level_reading"), "note": "; ".join(notes) or None,
            "tier": t["tier_level"].format(tier=r.get("tier"), level=tier_level)
            if r.get("tier") and tier_level else None}


def _touched(r: dict, t: dict[str, str]) -> dict:
    """The center-wide table: the drilled system first, then every other one it touched."""
    summary = r.get("center_summary")
    if not summary:
        return {"touched": []}
    drilled = drilled_row(r)
    rows = [{"name": x["name"], "tier": x.get("tier") or "—", "rto": seconds(x.get("rto_seconds"), t),
             "lost": "—" if x.get("rpo_lost_writes") is None else str(x["rpo_lost_writes"]),
             "level": x.get("gbt20988_level") or "—", "ok": bool(x.get("passed")), "note": x.get("note") or ""}
            for x in [drilled, *r.get("touched_systems", [])]]
    return {"touched": rows, "touched_summary": t["touched_summary"].format(
        passed=summary["passed"], systems=summary["systems"], lost=summary["lost_writes"],
        worst=seconds(summary.get("worst_rto_seconds"), t))}


def build(r: dict, out: Any, lang: str, plot: bool) -> dict:
    """Everything the templates show, in `lang` ("en" or "zh")."""
    t = TEXT[lang]
    zh = lang == "zh"
    details = _Details(t)
    status = r.get("status") or "unknown"
    verdict = t["passed"] if r.get("passed") else (STATUS_ZH.get(status, status) if zh else status.upper())
    reason = details.short(r.get("reason"))
    steps = [{"start": clock(e["at"], UTC8)[11:23],
              "from_fault": f"{_since(e.get('from_fault_seconds'))} → {_since(e.get('ended_from_fault_seconds'))}",
              "took": seconds(e.get("seconds"), t), "phase": e["phase"], "action": e["action"],
              "detail": details.short(e.get("detail")), "ok": e["ok"]} for e in r.get("events", [])]
    judged_label = t["rto_declaration"] if r.get("rto_from") == "declaration" else t["rto_fault"]
    notes = [t["judged_note"].format(label=judged_label)] if r.get("targets") else []
    if r.get("rto_from") == "declaration" or (r.get("markers") or {}).get("declare"):
        notes.append(t["declared_note"])
    return {
        "t": t, "lang": t["lang"], "zh": zh, "plot": plot,
        "heading": t["heading"].format(scenario=r["scenario"], system=r["system"]),
        "title": (zh and out.scenario.title_zh) or out.scenario.title,
        "description": ((zh and out.scenario.description_zh) or out.scenario.description).strip(),
        "verdict": verdict, "passed": bool(r.get("passed")), "reason": reason,
        "skipped": status == "skipped",
        "figures": _figures(r, t, zh), "notes": notes, "level": _level(r, t),
        "criteria": [_criterion(c, t, zh) for c in r.get("criteria", [])],
        "steps": steps,
        "incarnations": r.get("incarnations", []),
        "split_brain_events": [{"kind": e["kind"], "detail": details.short(e["detail"])}
                               for e in r.get("split_brain_events", [])],
        "restored": [details.short(item) for item in r.get("restored", [])],
        "alerts": [{"name": a["name"],
                    "fired": t["never_fired"] if a.get("fired_after_s") is None
                    else f"{a['fired_after_s']:.3f} s",
                    "resolved": t["not_resolved"] if a.get("resolved_after_s") is None
                    else f"{a['resolved_after_s']:.3f} s"} for a in r.get("alerts") or []],
        "alerts_missing": [t["alert_missing"].format(name=n) for n in r.get("alerts_missing") or []],
        "alerts_note": r.get("alerts_note"),
        **_touched(r, t),
        "left_to_do": [details.short(item) for item in r.get("left_to_do", [])],
        "details": [{"text": text, "fence": fence_for(text)} for text in details.blocks],
        "context": _context(r, t),
    }
