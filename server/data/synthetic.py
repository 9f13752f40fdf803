"""Deterministic synthetic short-video catalogue and interaction log.

The model (see docs/DATA.md for the full description) is built so that ranking matters:

* 50 topics with bilingual (English / Chinese) tag vocabularies and title templates.
* Creators with heavy-tailed sizes and popularity, 1-2 main topics each; ~20% of the items
  belong to recently started ``new_creator`` accounts with few, recent items.
* Users prefer 1-3 topics (Dirichlet mix) and have heavy-tailed activity. Their views follow
  their topics (85%) or explore (15%), and within a topic favour good items from popular
  creators, which gives a popularity bias like a real feed. Engagement events and the watch
  ratio depend on how well the item matches the user.

Everything is vectorised numpy/pyarrow; Python loops run only over topics.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from server.data import schema as S
from server.data.loaders import write_table

#: Default "now" (2025-01-01T00:00:00Z): fixed so the output never depends on the clock.
DEFAULT_NOW_TS: Final[int] = 1_735_689_600
DAY: Final[int] = 86_400
PUBLISH_WINDOW_DAYS: Final[int] = 90
INTERACTION_WINDOW_DAYS: Final[int] = 30
NEW_CREATOR_WINDOW_DAYS: Final[int] = 14
NEW_CREATOR_ITEM_SHARE: Final[float] = 0.2
EXPLORE_RATE: Final[float] = 0.15
#: Mean views per user. Engagement events add ~50% rows on top, less the dropped repeat
#: impressions: ~50 interaction rows per user.
MEAN_VIEWS_PER_USER: Final[float] = 35.0
NEW_CREATOR: Final = "new_creator"
ESTABLISHED: Final = "established"


@dataclass(frozen=True)
class Topic:
    """One content topic: 5 English tags, 5 Chinese tags, one title template per language.

    Templates contain exactly one ``{t}``, filled with one of the topic's tags.
    """

    key: str
    en: tuple[str, str, str, str, str]
    zh: tuple[str, str, str, str, str]
    title_en: str
    title_zh: str


# fmt: off
TOPICS: Final[tuple[Topic, ...]] = (
    Topic("cooking", ("cooking", "recipe", "homecooking", "easyrecipe", "kitchen"),
          ("美食", "家常菜", "下厨房", "美食教程", "快手菜"),
          "15-minute {t} dinner anyone can make", "今天做{t}，全家都爱吃"),
    Topic("baking", ("baking", "cake", "bread", "dessert", "pastry"),
          ("烘焙", "蛋糕", "甜品", "面包", "烘焙教程"),
          "Fluffy {t} with no mixer", "零失败{t}，新手必看"),
    Topic("streetfood", ("streetfood", "foodie", "foodtour", "snacks", "nightmarket"),
          ("街头美食", "吃货", "探店", "小吃", "夜市"),
          "Eating only {t} for 24 hours", "{t}探店，这家排队两小时"),
    Topic("chinese_cuisine", ("hotpot", "sichuanfood", "spicy", "dumplings", "noodles"),
          ("火锅", "川菜", "麻辣", "饺子", "面条"),
          "The best {t} I have ever had", "正宗{t}的做法，看一遍就会"),
    Topic("mukbang", ("mukbang", "eatingshow", "foodchallenge", "bigbites", "eatwithme"),
          ("吃播", "大胃王", "美食挑战", "干饭", "干饭人"),
          "10,000 calorie {t} challenge", "{t}｜一口气吃完十斤"),
    Topic("coffee_tea", ("coffee", "latteart", "barista", "tea", "cafe"),
          ("咖啡", "拉花", "奶茶", "茶艺", "咖啡店"),
          "A day as a {t} lover", "在家做{t}，比店里还好喝"),
    Topic("fitness", ("fitness", "workout", "gym", "homeworkout", "fatloss"),
          ("健身", "减脂", "居家健身", "增肌", "健身打卡"),
          "20 minute {t} with no equipment", "{t}第30天，变化太明显了"),
    Topic("yoga", ("yoga", "stretching", "meditation", "mindfulness", "flexibility"),
          ("瑜伽", "拉伸", "冥想", "体态", "普拉提"),
          "Morning {t} for stiff backs", "每天十分钟{t}，告别久坐"),
    Topic("running", ("running", "marathon", "jogging", "cardio", "runner"),
          ("跑步", "马拉松", "夜跑", "跑者", "配速"),
          "How I trained for my first {t}", "{t}打卡第100天"),
    Topic("basketball", ("basketball", "nba", "dunk", "hoops", "crossover"),
          ("篮球", "扣篮", "街球", "投篮", "篮球教学"),
          "Top 10 {t} moments this season", "{t}高光时刻，太燃了"),
    Topic("football", ("football", "soccer", "goals", "skills", "premierleague"),
          ("足球", "进球", "足球技巧", "中超", "世界杯"),
          "Learn this {t} move in 5 minutes", "{t}名场面，看完热血沸腾"),
    Topic("martial_arts", ("martialarts", "kungfu", "boxing", "mma", "selfdefense"),
          ("武术", "功夫", "拳击", "格斗", "防身术"),
          "Basic {t} combos for beginners", "{t}教学，女生也能学"),
    Topic("extreme_sports", ("skateboarding", "skatepark", "bmx", "parkour", "extremesports"),
          ("滑板", "极限运动", "跑酷", "轮滑", "冲浪"),
          "Landing my first {t} trick", "{t}练了一年的成果"),
    Topic("cats", ("cats", "kitten", "catsoftiktok", "meow", "catlover"),
          ("萌宠", "猫咪", "喵星人", "铲屎官", "橘猫"),
          "My {t} reacts to a cucumber", "{t}的迷惑行为大赏"),
    Topic("dogs", ("dogs", "puppy", "doglover", "dogtraining", "goodboy"),
          ("狗狗", "汪星人", "柯基", "金毛", "训犬"),
          "Teaching my {t} a new trick", "{t}第一次见到雪"),
    Topic("travel", ("travel", "wanderlust", "travelvlog", "backpacking", "roadtrip"),
          ("旅行", "旅游攻略", "自驾游", "打卡", "旅行vlog"),
          "3 days of {t} on a budget", "{t}｜人均500玩三天"),
    Topic("outdoors", ("hiking", "camping", "outdoors", "mountains", "nature"),
          ("徒步", "露营", "户外", "爬山", "风景"),
          "Solo {t} in the rain", "周末去{t}，治愈一整周"),
    Topic("city_walk", ("citywalk", "cityguide", "urbanexploring", "nightview", "skyline"),
          ("城市漫步", "城市", "夜景", "逛街", "城市记忆"),
          "A slow {t} through the old town", "{t}｜发现城市的另一面"),
    Topic("makeup", ("makeup", "beauty", "makeuptutorial", "lipstick", "grwm"),
          ("美妆", "化妆教程", "口红", "眼妆", "仿妆"),
          "Everyday {t} in 5 minutes", "{t}｜手残党也能学会"),
    Topic("skincare", ("skincare", "skincareroutine", "glowingskin", "sunscreen", "acne"),
          ("护肤", "护肤品", "防晒", "祛痘", "敏感肌"),
          "My honest {t} routine", "{t}避坑指南，别再乱买了"),
    Topic("fashion", ("fashion", "ootd", "outfit", "streetstyle", "styling"),
          ("穿搭", "时尚", "每日穿搭", "街拍", "显瘦穿搭"),
          "5 ways to style one {t}", "小个子{t}，一周不重样"),
    Topic("hanfu_culture", ("hanfu", "calligraphy", "chineseculture", "tradition", "opera"),
          ("汉服", "书法", "传统文化", "国风", "戏曲"),
          "The story behind {t}", "{t}之美，一眼千年"),
    Topic("gaming", ("gaming", "gameplay", "gamer", "esports", "speedrun"),
          ("游戏", "电竞", "王者荣耀", "原神", "游戏解说"),
          "This {t} clutch was insane", "{t}名场面，太秀了"),
    Topic("tech", ("tech", "gadgets", "unboxing", "smartphone", "review"),
          ("数码", "开箱", "手机测评", "科技", "数码评测"),
          "Is this {t} worth it?", "{t}｜用了一个月的真实感受"),
    Topic("programming", ("coding", "programming", "python", "developer", "webdev"),
          ("编程", "程序员", "代码", "前端", "算法"),
          "Learn {t} in 60 seconds", "{t}的一天，真实记录"),
    Topic("science", ("science", "physics", "experiment", "space", "sciencefacts"),
          ("科普", "物理", "实验", "天文", "冷知识"),
          "The {t} that blew my mind", "{t}｜原来是这样的"),
    Topic("history", ("history", "historyfacts", "ancient", "documentary", "museum"),
          ("历史", "历史故事", "博物馆", "古代", "文物"),
          "The forgotten {t} nobody talks about", "三分钟讲透{t}"),
    Topic("study", ("study", "studytips", "studywithme", "exam", "productivity"),
          ("学习", "考研", "自律", "学习方法", "效率"),
          "{t}: how I got through finals", "{t}｜上岸经验分享"),
    Topic("language", ("languagelearning", "english", "vocabulary", "ielts", "pronunciation"),
          ("英语口语", "学英语", "单词", "雅思", "发音"),
          "Stop making this {t} mistake", "{t}｜每天五分钟"),
    Topic("finance", ("finance", "investing", "personalfinance", "stocks", "budgeting"),
          ("理财", "基金", "股票", "存钱", "财经"),
          "{t} basics I wish I knew at 20", "{t}入门，普通人也能学"),
    Topic("parenting", ("parenting", "baby", "momlife", "toddler", "family"),
          ("育儿", "宝宝", "亲子", "萌娃", "宝妈"),
          "Real {t} moments nobody posts", "{t}日常，又被萌化了"),
    Topic("relationships", ("relationships", "couple", "dating", "wedding", "lovestory"),
          ("情侣", "恋爱", "婚礼", "甜宠", "表白"),
          "Our {t} story in one minute", "{t}｜这也太甜了吧"),
    Topic("anime", ("anime", "manga", "cosplay", "otaku", "animeedit"),
          ("动漫", "二次元", "漫展", "动画", "番剧"),
          "Rating every {t} of the season", "{t}名场面混剪"),
    Topic("movies", ("movies", "filmreview", "moviereview", "cinema", "trailer"),
          ("电影", "影评", "电影解说", "好片推荐", "追剧"),
          "Hidden details in this {t}", "几分钟看完{t}"),
    Topic("books", ("books", "booktok", "reading", "bookreview", "novels"),
          ("读书", "好书推荐", "书单", "阅读", "小说"),
          "{t} that changed how I think", "{t}｜这本书值得反复读"),
    Topic("music", ("music", "singing", "cover", "guitar", "acoustic"),
          ("翻唱", "音乐", "吉他弹唱", "唱歌", "原创音乐"),
          "Acoustic {t} in my bedroom", "{t}｜一开口就被惊艳"),
    Topic("dance", ("dance", "dancechallenge", "choreography", "kpop", "hiphop"),
          ("舞蹈", "街舞", "翻跳", "宅舞", "舞蹈教学"),
          "Learn this {t} step by step", "{t}分解教学，慢速版"),
    Topic("comedy", ("comedy", "funny", "prank", "sketch", "memes"),
          ("搞笑", "段子", "整蛊", "沙雕", "爆笑"),
          "When the {t} goes too far", "{t}｜笑到停不下来"),
    Topic("magic", ("magic", "magictrick", "cardtrick", "illusion", "mentalism"),
          ("魔术", "魔术揭秘", "扑克", "近景魔术", "神奇"),
          "This {t} fooled everyone", "{t}，你看出破绽了吗"),
    Topic("asmr", ("asmr", "satisfying", "relaxing", "tingles", "sleepaid"),
          ("解压", "助眠", "治愈", "沉浸式", "声控"),
          "{t} sounds for deep sleep", "{t}｜戴上耳机听"),
    Topic("lifehacks", ("lifehacks", "tips", "hacks", "cleaninghacks", "howto"),
          ("生活小技巧", "妙招", "清洁", "实用技巧", "省钱"),
          "{t} that save me hours", "{t}，知道的人不多"),
    Topic("diy", ("diy", "crafts", "handmade", "upcycling", "crochet"),
          ("手工", "手作", "旧物改造", "钩针", "编织"),
          "Easy {t} project for a weekend", "{t}｜零基础也能做"),
    Topic("home", ("homedecor", "interiordesign", "roomtour", "organization", "minimalism"),
          ("家居", "装修", "收纳", "房间改造", "极简生活"),
          "{t} on a tiny budget", "{t}｜出租屋大变样"),
    Topic("gardening", ("gardening", "plants", "houseplants", "succulents", "urbangarden"),
          ("园艺", "多肉", "绿植", "养花", "阳台花园"),
          "Keeping {t} alive in winter", "{t}｜阳台变成小花园"),
    Topic("rural_life", ("farmlife", "countryside", "villagelife", "harvest", "slowliving"),
          ("乡村生活", "农村", "田园", "三农", "丰收"),
          "A quiet day of {t}", "{t}｜回到农村的第一年"),
    Topic("fishing", ("fishing", "bassfishing", "angler", "fishingtrip", "flyfishing"),
          ("钓鱼", "路亚", "野钓", "钓友", "渔获"),
          "{t} at sunrise, biggest catch yet", "{t}｜今天爆护了"),
    Topic("cars", ("cars", "carreview", "supercar", "ev", "drifting"),
          ("汽车", "新能源车", "试驾", "改装车", "超跑"),
          "Honest {t} after 10,000 km", "{t}｜提车一个月真实体验"),
    Topic("photography", ("photography", "photooftheday", "cameratips", "portrait", "lightroom"),
          ("摄影", "手机摄影", "人像", "调色", "构图"),
          "3 {t} tricks for better photos", "{t}技巧，随手拍出大片"),
    Topic("art", ("art", "drawing", "painting", "sketching", "digitalart"),
          ("绘画", "插画", "板绘", "水彩", "素描"),
          "Time-lapse {t} from start to finish", "{t}过程，一笔一画"),
    Topic("health", ("health", "nutrition", "wellness", "sleep", "healthyeating"),
          ("健康", "养生", "营养", "减肥餐", "睡眠"),
          "What a {t} expert eats in a day", "{t}小知识，建议收藏"),
)

#: Platform-wide tags that many videos carry regardless of topic.
GENERIC_EN: Final[tuple[str, ...]] = (
    "fyp", "foryou", "trending", "viral", "vlog", "daily", "challenge", "tutorial", "shorts",
)
GENERIC_ZH: Final[tuple[str, ...]] = (
    "热门", "推荐", "日常", "上热门", "记录生活", "挑战", "干货", "分享", "涨知识",
)

#: Topic-independent title templates; ``{t}`` takes a tag of the item's topic.
TITLES_EN: Final[tuple[str, ...]] = (
    "My {t} routine that actually works",
    "I tried {t} for a week",
    "Beginner's guide to {t}",
    "Things nobody tells you about {t}",
    "Quick {t} tips in 60 seconds",
    "POV: you just discovered {t}",
    "Why everyone is talking about {t}",
    "Rating {t} so you don't have to",
)
TITLES_ZH: Final[tuple[str, ...]] = (
    "{t}｜新手也能学会",
    "关于{t}，这些你一定要知道",
    "今天的{t}分享",
    "{t}合集，建议收藏",
    "沉浸式{t}",
    "第一次尝试{t}",
    "{t}干货｜看完少走弯路",
    "原来{t}还能这样",
)
# fmt: on

_LANG_ZH, _LANG_EN, _LANG_MIXED = 0, 1, 2


@dataclass(frozen=True, eq=False)
class SyntheticCatalogue:
    """In-memory output of :func:`simulate`, including the latent "truth" behind it.

    Attributes
    ----------
    items, interactions
        Tables in the schema of docs/DATA.md (what :func:`generate` writes).
    item_topic
        Topic index (into :data:`TOPICS`) of each items row.
    item_quality
        Latent quality in (0, 1) of each items row.
    user_topics
        ``(n_users, 3)`` preferred topic indices, ``-1`` padded; user ``u`` is row ``u`` and
        has id ``user_ids[u]``.
    user_topic_weights
        ``(n_users, 3)`` Dirichlet mix over ``user_topics`` (0 for padding).
    user_ids
        User id strings.
    n_creators
        Number of distinct creators.
    """

    items: pa.Table
    interactions: pa.Table
    item_topic: NDArray[np.int16]
    item_quality: NDArray[np.float32]
    user_topics: NDArray[np.int16]
    user_topic_weights: NDArray[np.float32]
    user_ids: NDArray[np.str_]
    n_creators: int


def _ids(prefix: str, n: int) -> NDArray[np.str_]:
    """``prefix`` + zero-padded index; fixed width keeps ids sortable as text."""
    width = max(len(str(max(n - 1, 0))), 1)
    return np.char.add(prefix, np.char.zfill(np.arange(n).astype(np.str_), width))


def _sigmoid(x: NDArray[np.float64]) -> NDArray[np.float64]:
    return np.asarray(1.0 / (1.0 + np.exp(-x)), dtype=np.float64)


def _top_k_rows(
    rng: np.random.Generator, log_w: NDArray[np.float64], k: NDArray[np.int64]
) -> NDArray[np.int64]:
    """Weighted sampling without replacement, per row (Gumbel top-k).

    Returns an ``(m, V)`` matrix of column indices; row ``i`` holds its ``k[i]`` picks first
    and ``-1`` after them.
    """
    keys = log_w + rng.gumbel(size=log_w.shape)
    order = np.argsort(-keys, axis=1, kind="stable")
    return np.where(np.arange(log_w.shape[1])[None, :] < k[:, None], order, -1)


def _creators(
    rng: np.random.Generator, n_items: int, topic_pop: NDArray[np.float64], now_ts: int
) -> dict[str, NDArray[Any]]:
    """Creators with heavy-tailed sizes; ~20% of items go to small, recent new creators."""
    n_topics = topic_pop.size
    n_new_items = round(NEW_CREATOR_ITEM_SHARE * n_items) if n_items >= 5 else 0
    n_est_items = n_items - n_new_items
    # New creators: 1-5 items each (geometric), enough of them to cover their share.
    new_sizes = np.minimum(rng.geometric(0.45, size=max(n_new_items, 1)), 5)
    cut = int(np.searchsorted(np.cumsum(new_sizes), n_new_items)) + 1
    new_sizes = new_sizes[:cut] if n_new_items else new_sizes[:0]
    if n_new_items:
        new_sizes[-1] -= int(new_sizes.sum()) - n_new_items
    # Established: Pareto(alpha=1.1) shares give a few very large creators. The share is capped
    # (2% of the catalogue at demo size) because one draw from so heavy a tail can otherwise
    # own a quarter of the catalogue, which no real feed looks like.
    n_est = max(1, n_est_items // 30)
    share = rng.pareto(1.1, size=n_est) + 1.0
    share = np.minimum(share / share.sum(), max(0.02, 10.0 / n_est))
    est_sizes = 1 + rng.multinomial(n_est_items - n_est, share / share.sum())
    sizes = np.concatenate([est_sizes, new_sizes]).astype(np.int64)
    n_cre = sizes.size
    is_new = np.arange(n_cre) >= n_est
    # Popularity: grows with size but sub-linearly, lognormal noise; new accounts start low.
    pop = np.exp(rng.normal(0.0, 0.8, n_cre)) * sizes.astype(np.float64) ** 0.35
    pop[is_new] *= 0.35
    topic1 = rng.choice(n_topics, size=n_cre, p=topic_pop)
    topic2 = rng.choice(n_topics, size=n_cre, p=topic_pop)
    topic2 = np.where((rng.random(n_cre) < 0.4) & (topic2 != topic1), topic2, -1)
    lang = rng.choice(3, size=n_cre, p=[0.55, 0.30, 0.15])
    start = np.where(
        is_new,
        now_ts - (rng.random(n_cre) * NEW_CREATOR_WINDOW_DAYS * DAY).astype(np.int64),
        now_ts - PUBLISH_WINDOW_DAYS * DAY,
    )
    return {
        "sizes": sizes,
        "is_new": is_new,
        "pop": pop,
        "topic1": topic1,
        "topic2": topic2,
        "lang": lang,
        "start": start,
        "quality_offset": rng.normal(0.0, 0.08, n_cre),
    }


def _tag_vocab() -> tuple[NDArray[np.str_], NDArray[np.bool_]]:
    """All tags (topic tags topic after topic, 10 each, then generic) and an is-Chinese mask."""
    tags: list[str] = []
    for t in TOPICS:
        tags.extend(t.en)
        tags.extend(t.zh)
    tags.extend(GENERIC_EN)
    tags.extend(GENERIC_ZH)
    zh = [any("\u4e00" <= ch <= "\u9fff" for ch in tag) for tag in tags]
    return np.array(tags, dtype=np.str_), np.array(zh, dtype=np.bool_)


def _items(
    rng: np.random.Generator,
    cre: dict[str, NDArray[Any]],
    topic_pop: NDArray[np.float64],
    now_ts: int,
) -> tuple[pa.Table, NDArray[np.int64], NDArray[np.float64], NDArray[np.int64]]:
    """Items table, plus per item: topic, latent quality, creator index."""
    n_topics = len(TOPICS)
    creator = np.repeat(np.arange(cre["sizes"].size), cre["sizes"])
    n = creator.size
    t1, t2 = cre["topic1"][creator], cre["topic2"][creator]
    r = rng.random(n)
    explore_topic = rng.choice(n_topics, size=n, p=topic_pop)
    topic = np.where(
        t2 >= 0,
        np.where(r < 0.65, t1, np.where(r < 0.9, t2, explore_topic)),
        np.where(r < 0.9, t1, explore_topic),
    )
    quality = np.clip(rng.beta(2.5, 2.5, n) + cre["quality_offset"][creator], 0.01, 0.99)
    start = cre["start"][creator]
    # Publish times: uniform since the creator started; at least 10 minutes before "now".
    span = np.maximum(now_ts - 600 - start, 1)
    publish = start + (rng.random(n) * span).astype(np.int64)

    # Tags: 2-6 from the item's topic, 0-1 from the creator's other topic, 0-2 generic; 3-8.
    lang = cre["lang"][creator]
    n_topic_tags = rng.integers(2, 7, n)
    n_generic = rng.choice(3, size=n, p=[0.35, 0.45, 0.2])
    n_second = ((t2 >= 0) & (topic == t1) & (rng.random(n) < 0.3)).astype(np.int64)
    n_topic_tags = np.clip(n_topic_tags, 3 - n_generic - n_second, 8 - n_generic - n_second)
    vocab, is_zh = _tag_vocab()
    # Chinese-speaking creators mostly tag in Chinese, English ones mostly in English.
    lang_logw = np.log(np.array([[1.0, 3.0], [3.0, 0.3], [1.0, 1.0]]))  # [lang, is_zh]
    slots = np.full((n, 9), -1, np.int64)
    topic_zh = is_zh[:10]
    for t in range(n_topics):
        rows = np.flatnonzero(topic == t)
        if rows.size:
            picks = _top_k_rows(
                rng, lang_logw[lang[rows]][:, topic_zh.astype(np.int64)], n_topic_tags[rows]
            )
            slots[rows, :6] = np.where(picks[:, :6] >= 0, picks[:, :6] + 10 * t, -1)
    second = np.flatnonzero(n_second > 0)
    slots[second, 6] = 10 * t2[second] + rng.integers(0, 10, second.size)
    gen_zh = is_zh[10 * n_topics :].astype(np.int64)
    gen = _top_k_rows(rng, lang_logw[lang][:, gen_zh], n_generic)[:, :2]
    slots[:, 7:9] = np.where(gen >= 0, gen + 10 * n_topics, -1)
    present = slots >= 0
    counts = present.sum(axis=1)
    offsets = np.zeros(n + 1, np.int32)
    np.cumsum(counts, out=offsets[1:])
    flat = pa.array(vocab).take(pa.array(slots[present]))
    keywords = pc.binary_join(pa.ListArray.from_arrays(pa.array(offsets), flat), S.KEYWORD_SEP)

    # Titles: creator language (mixed: coin flip); 30% the topic's own template.
    title_zh = np.where(lang == _LANG_MIXED, rng.random(n) < 0.5, lang == _LANG_ZH)
    own = rng.random(n) < 0.3
    n_gen_tpl = len(TITLES_EN)
    tpl = np.where(own, n_gen_tpl + topic, rng.integers(0, n_gen_tpl, n))
    tpl_en = np.array(TITLES_EN + tuple(t.title_en for t in TOPICS), dtype=np.str_)
    tpl_zh = np.array(TITLES_ZH + tuple(t.title_zh for t in TOPICS), dtype=np.str_)
    word_idx = 10 * topic + rng.integers(0, 5, n) + 5 * title_zh
    template = np.where(title_zh, tpl_zh[tpl], tpl_en[tpl])
    parts = np.char.partition(template, "{t}")
    title = np.char.add(np.char.add(parts[:, 0], vocab[word_idx]), parts[:, 2])

    # Ids in publish order, like a platform that numbers uploads sequentially.
    order = np.argsort(publish, kind="stable")
    creator_ids = _ids("c", cre["sizes"].size)
    group = np.where(cre["is_new"][creator], NEW_CREATOR, ESTABLISHED)
    table = pa.table(
        {
            S.ITEM_ID: pa.array(_ids("v", n)),
            S.CREATOR_ID: pa.array(creator_ids[creator[order]]),
            S.KEYWORDS: keywords.take(pa.array(order)),
            S.TITLE: pa.array(title[order]),
            S.PUBLISH_TS: pa.array(publish[order]),
            S.GROUP: pa.array(group[order]),
        }
    )
    return table, topic[order], quality[order], creator[order]


def _users(
    rng: np.random.Generator, n_users: int, topic_pop: NDArray[np.float64]
) -> tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.int64]]:
    """Preferred topics (n_users, 3; -1 padded), their Dirichlet weights, views per user."""
    k = rng.choice([1, 2, 3], size=n_users, p=[0.3, 0.45, 0.25])
    log_pop = np.broadcast_to(np.log(topic_pop), (n_users, topic_pop.size))
    topics = _top_k_rows(rng, log_pop, k)[:, :3]
    weights = np.where(topics >= 0, rng.gamma(1.0, size=(n_users, 3)), 0.0)
    weights /= weights.sum(axis=1, keepdims=True)
    # Heavy-tailed activity: lognormal, rescaled to the target mean, at least 3 views.
    raw = np.exp(rng.normal(0.0, 1.0, n_users))
    views = np.maximum(np.round(raw * MEAN_VIEWS_PER_USER / np.exp(0.5)), 3).astype(np.int64)
    return topics, weights, views


def simulate(
    n_items: int, n_users: int, seed: int, *, now_ts: int | None = None
) -> SyntheticCatalogue:
    """Build the synthetic catalogue in memory (see the module docstring for the model).

    Parameters
    ----------
    n_items, n_users
        Sizes; both at least 1.
    seed
        Seed of the only random generator used: same arguments -> same output.
    now_ts
        "Current" time in epoch seconds; defaults to :data:`DEFAULT_NOW_TS`.

    Returns
    -------
    SyntheticCatalogue
    """
    if n_items < 1 or n_users < 1:
        raise ValueError(f"need n_items >= 1 and n_users >= 1, got {n_items}, {n_users}")
    now = DEFAULT_NOW_TS if now_ts is None else int(now_ts)
    rng = np.random.default_rng(seed)
    n_topics = len(TOPICS)
    # Some topics are much bigger than others (Zipf over a random topic order).
    topic_pop: NDArray[np.float64] = 1.0 / np.arange(1, n_topics + 1, dtype=np.float64) ** 0.8
    topic_pop = topic_pop[rng.permutation(n_topics)]
    topic_pop /= topic_pop.sum()

    cre = _creators(rng, n_items, topic_pop, now)
    items, item_topic, quality, creator = _items(rng, cre, topic_pop, now)
    publish = items.column(S.PUBLISH_TS).to_numpy()
    user_topics, user_w, views = _users(rng, n_users, topic_pop)

    # ---- views: topic from the user's mix (or exploration), item within the topic.
    uid = np.repeat(np.arange(n_users), views)
    m = uid.size
    cum_w = np.cumsum(user_w, axis=1)[uid]
    # Clamp to the user's last real topic: rounding can leave cum_w[k - 1] a hair below 1.
    n_pref = (user_topics >= 0).sum(axis=1)
    slot = np.minimum((rng.random(m)[:, None] > cum_w).sum(axis=1), n_pref[uid] - 1)
    topic = user_topics[uid, slot]
    explore = rng.random(m) < EXPLORE_RATE
    topic = np.where(explore, rng.choice(n_topics, size=m, p=topic_pop), topic)
    # Feed exposure: good items from popular creators, fresher ones favoured a little.
    age_days = (now - publish) / DAY
    exposure = quality**2 * cre["pop"][creator] ** 0.9 * (0.3 + np.exp(-age_days / 20.0))
    item = np.empty(m, np.int64)
    by_topic = np.argsort(topic, kind="stable")
    bounds = np.searchsorted(topic[by_topic], np.arange(n_topics + 1))
    all_items = np.arange(item_topic.size)
    for t in range(n_topics):
        rows = by_topic[bounds[t] : bounds[t + 1]]
        if not rows.size:
            continue
        members = np.flatnonzero(item_topic == t)
        if not members.size:  # tiny catalogues: fall back to the whole catalogue
            members = all_items
        cdf = np.cumsum(exposure[members])
        pick = np.searchsorted(cdf, rng.random(rows.size) * cdf[-1], side="right")
        item[rows] = members[np.minimum(pick, members.size - 1)]
    # One impression per (user, item): a repeat would only blur held-out evaluation.
    _, first = np.unique(uid * np.int64(item_topic.size) + item, return_index=True)
    first.sort()
    uid, item = uid[first], item[first]
    m = uid.size

    # ---- engagement: affinity = the user's weight on the item's topic.
    match = (user_topics[uid] == item_topic[item][:, None]) * user_w[uid]
    affinity = match.sum(axis=1)
    q = quality[item]
    z = -1.6 + 2.4 * affinity + 2.0 * (q - 0.5) + rng.normal(0.0, 0.9, m)
    watch = np.clip(1.3 * _sigmoid(z) + rng.normal(0.0, 0.05, m), 0.0, S.WATCH_RATIO_MAX)
    watch = np.round(watch, 3)
    complete = watch >= 1.0
    skip = watch < 0.2
    p_like = _sigmoid(-4.9 + 2.5 * affinity + 2.5 * (q - 0.5) + 1.2 * complete) * ~skip
    like = rng.random(m) < p_like
    comment = rng.random(m) < 0.25 * p_like
    share = rng.random(m) < 0.10 * p_like
    favorite = rng.random(m) < 0.30 * p_like
    dislike = skip & (affinity == 0) & (rng.random(m) < 0.08)

    start = np.maximum(publish[item], now - INTERACTION_WINDOW_DAYS * DAY)
    ts = start + (rng.random(m) * (now - start)).astype(np.int64)
    events = {
        "view": np.ones(m, np.bool_),
        "complete": complete,
        "like": like,
        "comment": comment,
        "share": share,
        "favorite": favorite,
        "skip": skip,
        "dislike": dislike,
    }
    parts_uid, parts_item, parts_event, parts_ts, parts_watch = [], [], [], [], []
    for name, mask in events.items():
        rows = np.flatnonzero(mask)
        # Reactions come seconds after the view starts; never after "now".
        delay = 0 if name == "view" else rng.integers(2, 90, rows.size)
        parts_uid.append(uid[rows])
        parts_item.append(item[rows])
        parts_event.append(np.full(rows.size, S.event_code(name), np.int8))
        parts_ts.append(np.minimum(ts[rows] + delay, now))
        parts_watch.append(watch[rows] if name == "view" else np.full(rows.size, np.nan))
    e_uid = np.concatenate(parts_uid)
    e_item = np.concatenate(parts_item)
    e_event = np.concatenate(parts_event)
    e_ts = np.concatenate(parts_ts)
    e_watch = np.concatenate(parts_watch)
    order = np.lexsort((e_event, e_item, e_uid, e_ts))  # time order, ties broken fully

    user_ids = _ids("u", n_users)
    item_ids = items.column(S.ITEM_ID)
    e_watch = e_watch[order]
    interactions = pa.table(
        {
            S.USER_ID: pa.array(user_ids).take(pa.array(e_uid[order])),
            S.ITEM_ID: item_ids.take(pa.array(e_item[order])),
            S.EVENT: pa.array(S.EVENT_TYPES).take(pa.array(e_event[order])),
            S.TIMESTAMP: pa.array(e_ts[order]),
            S.WATCH_RATIO: pa.array(e_watch, mask=np.isnan(e_watch)),
        }
    )
    return SyntheticCatalogue(
        items=items,
        interactions=interactions,
        item_topic=item_topic.astype(np.int16),
        item_quality=quality.astype(np.float32),
        user_topics=user_topics.astype(np.int16),
        user_topic_weights=user_w.astype(np.float32),
        user_ids=user_ids,
        n_creators=int(cre["sizes"].size),
    )


def generate(
    n_items: int, n_users: int, seed: int, out_dir: Path, *, now_ts: int | None = None
) -> dict[str, Any]:
    """Write ``out_dir/items.csv`` and ``out_dir/interactions.csv`` (atomically).

    Parameters
    ----------
    n_items, n_users
        Sizes (demo default: 100,000 items and 20,000 users -> ~1M interaction rows).
    seed
        Same seed and arguments -> byte-identical files.
    out_dir
        Created if missing.
    now_ts
        "Current" time in epoch seconds; defaults to :data:`DEFAULT_NOW_TS` so that the output
        does not depend on the clock.

    Returns
    -------
    dict
        ``n_items``, ``n_users``, ``n_creators``, ``n_topics``, ``n_interactions``,
        ``n_new_creator_items``, ``seed``, ``now_ts``, ``items_path``,
        ``interactions_path`` and ``seconds`` (wall time, the only non-deterministic value).
    """
    t0 = time.perf_counter()
    cat = simulate(n_items, n_users, seed, now_ts=now_ts)
    out = Path(out_dir)
    items_path = out / "items.csv"
    interactions_path = out / "interactions.csv"
    write_table(cat.items, items_path)
    write_table(cat.interactions, interactions_path)
    n_new = int(pc.sum(pc.equal(cat.items.column(S.GROUP), NEW_CREATOR)).as_py() or 0)
    return {
        "n_items": cat.items.num_rows,
        "n_users": n_users,
        "n_creators": cat.n_creators,
        "n_topics": len(TOPICS),
        "n_interactions": cat.interactions.num_rows,
        "n_new_creator_items": n_new,
        "seed": seed,
        "now_ts": DEFAULT_NOW_TS if now_ts is None else int(now_ts),
        "items_path": str(items_path),
        "interactions_path": str(interactions_path),
        "seconds": round(time.perf_counter() - t0, 3),
    }
