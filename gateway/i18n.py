"""The words of the pages in English and Simplified Chinese, chosen per user (users.locale)."""

from __future__ import annotations

from collections.abc import Callable

LOCALES = ("en", "zh")
"""Supported languages: English, Simplified Chinese."""
DEFAULT_LOCALE = "en"

_MESSAGES: dict[str, tuple[str, str]] = {
    # key: (English, Simplified Chinese)
    "brand": ("Eldercare", "居家养老守护"),
    "sign_in": ("Sign in", "登录"),
    "sign_out": ("Sign out", "退出"),
    "username": ("Username", "用户名"),
    "password": ("Password", "密码"),
    "language": ("Language", "语言"),
    "lang_en": ("English", "English"),
    "lang_zh": ("中文", "中文"),
    "nav_home": ("Home", "首页"),
    "nav_alerts": ("Alerts", "警报"),
    "nav_elders": ("Elders", "老人档案"),
    "nav_devices": ("Devices", "设备"),
    "nav_rota": ("Rota", "值班表"),
    "nav_visits": ("Care visits", "探访"),
    "live": ("live", "实时"),
    "connecting": ("connecting…", "连接中…"),
    "reconnecting": ("reconnecting…", "重新连接中…"),
    "alerts_title": ("Open and acknowledged alerts", "未处理和已确认的警报"),
    "severity": ("Severity", "级别"),
    "elder": ("Elder", "老人"),
    "place": ("Place", "地点"),
    "kind": ("Kind", "类型"),
    "summary": ("Summary", "摘要"),
    "age": ("Age", "时长"),
    "status": ("Status", "状态"),
    "acknowledged_by": ("Acknowledged by", "确认人"),
    "acknowledge": ("Acknowledge", "确认"),
    "resolve": ("Resolve", "处理完毕"),
    "outcome": ("Outcome", "结果"),
    "note": ("Note", "备注"),
    "cancel": ("Cancel", "取消"),
    "no_open_alerts": ("No open alerts.", "没有未处理的警报。"),
    "critical": ("critical", "紧急"),
    "warning": ("warning", "警告"),
    "info": ("info", "提示"),
    "open": ("open", "未处理"),
    "acknowledged": ("acknowledged", "已确认"),
    "resolved": ("resolved", "已处理"),
    "false_alarm": ("false alarm", "误报"),
    "visited_fine": ("visited, all fine", "已探访，一切正常"),
    "needed_help": ("needed help", "需要帮助"),
    "ambulance": ("ambulance called", "已叫救护车"),
    "hospital": ("taken to hospital", "已送医院"),
    "other": ("other", "其他"),
    "just_now": ("just now", "刚刚"),
    "min": ("min", "分钟"),
    "h": ("h", "小时"),
    "d": ("d", "天"),
    "elders_title": ("Elders in your area", "辖区老人"),
    "search": ("Search", "搜索"),
    "name": ("Name", "姓名"),
    "village": ("Village", "村/社区"),
    "home": ("Home", "住户"),
    "address": ("Address", "地址"),
    "born": ("Born", "出生"),
    "phone": ("Phone", "电话"),
    "conditions": ("Conditions", "健康状况"),
    "contacts": ("Contacts", "联系人"),
    "thresholds": ("Thresholds", "阈值"),
    "away_mode": ("Away mode", "外出模式"),
    "away_none": ("At home (not away)", "在家（未外出）"),
    "away_until": ("away until", "外出至"),
    "away_mode_away": ("Away", "外出"),
    "away_mode_hospital": ("In hospital", "住院"),
    "away_open_ended": ("until further notice", "结束时间未定"),
    "devices": ("Devices", "设备"),
    "device": ("Device", "设备"),
    "room": ("Room", "房间"),
    "last_seen": ("Last seen", "最后上报"),
    "battery": ("Battery", "电量"),
    "online": ("online", "在线"),
    "offline": ("offline", "离线"),
    "never_seen": ("never reported", "从未上报"),
    "not_reported": ("not reported", "未上报"),
    "device_health_title": ("Device health", "设备状态"),
    "offline_only": ("Offline only", "只看离线"),
    "alert_history": ("Alert history", "警报记录"),
    "today": ("Today", "今天"),
    "timeline": ("The day as a timeline", "今日活动时间线"),
    "no_readings": ("No readings yet today.", "今天还没有数据。"),
    "rota_title": ("On-duty rota", "值班表"),
    "staff": ("Staff", "工作人员"),
    "region": ("Region", "区域"),
    "from": ("From", "开始"),
    "to": ("To", "结束"),
    "on_duty_now": ("on duty now", "正在值班"),
    "visits_title": ("Care visits", "探访记录"),
    "compliance_title": ("Below target this week", "本周探访未达标"),
    "visits_this_week": ("Visits this week", "本周探访次数"),
    "target": ("target", "目标"),
    "all_met": ("Every elder has had enough visits this week.", "本周所有老人探访均已达标。"),
    "record_visit": ("Record a visit", "登记探访"),
    "when": ("When", "时间"),
    "source": ("Source", "来源"),
    "save": ("Save", "保存"),
    "visit_saved": ("Visit recorded.", "探访已登记。"),
    "recent_visits": ("Recent visits", "最近探访"),
    "console": ("console", "工作台"),
    "phone_src": ("phone", "手机"),
    "tag": ("staff tag", "工牌打卡"),
    "family_title": ("How is {name}?", "{name}今天好吗？"),
    "presence_home": ("At home", "在家"),
    "presence_out": ("Out", "外出"),
    "presence_asleep": ("Asleep", "在睡觉"),
    "presence_unknown": ("Not known", "未知"),
    "last_activity": ("Last activity", "最近活动"),
    "indoor_temperature": ("Indoor temperature", "室内温度"),
    "open_alerts": ("Open alerts", "未处理的警报"),
    "past_alerts": ("Past alerts", "过去的警报"),
    "no_alerts": ("None.", "无。"),
    "daily_summary": ("Today in short", "今日小结"),
    "first_activity": ("First activity", "首次活动"),
    "motion_events": ("Movements seen", "活动次数"),
    "rooms_visited": ("Rooms used", "去过的房间"),
    "door_openings": ("Front door opened", "开门次数"),
    "hours_in_bed": ("Hours in bed", "卧床小时数"),
    "temperature_range": ("Temperature", "温度范围"),
    "device_ok": ("{title} in the {room} is working", "{room}的{title}工作正常"),
    "device_silent": (
        "{title} in the {room} has not reported since {since}",
        "{room}的{title}自{since}起没有上报",
    ),
    "device_never": ("{title} in the {room} has not reported yet", "{room}的{title}尚未上报"),
    "battery_low": ("its battery is low ({level}%)", "电池电量低（{level}%）"),
    "choose_elder": ("Choose", "选择"),
    "not_found": ("Not found.", "未找到。"),
    "pir_motion": ("motion", "活动"),
    "door_contact": ("door", "门"),
    "bed_mat": ("bed", "床"),
    "sos_button": ("SOS", "紧急按钮"),
    "temperature": ("temperature", "温度"),
    "visit_reader": ("visit reader", "探访打卡器"),
    "living room": ("living room", "客厅"),
    "kitchen": ("kitchen", "厨房"),
    "bathroom": ("bathroom", "卫生间"),
    "bedroom": ("bedroom", "卧室"),
    "hall": ("hall", "门厅"),
    "sos": ("SOS", "紧急呼叫"),
    "care_visits": ("care visits", "探访不足"),
    "error_outcome": ("Choose an outcome.", "请选择结果。"),
    "updated": ("Updated", "更新于"),
}


def translate(locale: str, key: str, **values: object) -> str:
    """The text of `key` in `locale` (English when unknown; the key itself when missing)."""
    pair = _MESSAGES.get(key)
    text = key if pair is None else (pair[1] if locale == "zh" else pair[0])
    return text.format(**values) if values else text


def translator(locale: str) -> Callable[..., str]:
    """`translate` bound to one locale, for templates."""

    def t(key: str, **values: object) -> str:
        return translate(locale, key, **values)

    return t


def messages(locale: str, keys: tuple[str, ...]) -> dict[str, str]:
    """Some messages in `locale`, for the pages' scripts."""
    return {k: translate(locale, k) for k in keys}


def all_keys() -> tuple[str, ...]:
    """Every message key (for tests)."""
    return tuple(_MESSAGES)
