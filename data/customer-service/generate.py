#!/usr/bin/env python3
"""Generate the bundled customer-service dataset of Maple & Pine (枫松商城).

Everything in data/customer-service/ except README.md is written by this script
from the tables below: one table of policy facts (FACTS), one product catalogue
(PRODUCTS), and one scenario table (SCENARIOS) of hand-written user phrasings and
answer bodies in English and Chinese, filled with slot values drawn from a
random.Random with a fixed seed.  Running it again reproduces the files byte for
byte (no sets, no dict-order surprises, no clock, no environment).

    python3 generate.py [OUTDIR]          # OUTDIR defaults to this folder
    python3 generate.py --train-plus FILE # also FILE: a copy of train_plus.jsonl

Files written (one JSON object per line, UTF-8, "\\n" line ends):

  policy.md                    the shop policy, both languages, with a key-facts table
  train.jsonl                  OpenAI chat fine-tuning format {"messages": [...]}
  train_plus.jsonl             train.jsonl + 320 single-turn rows of more customer
                               phrasings (EXTRA_USER): the quickstart trains on it
  validation.jsonl             same; held-out phrasings and held-out scenarios
  preference.jsonl             OpenAI DPO format {input, preferred_output, non_preferred_output}
  preference_validation.jsonl  same, prompts disjoint from preference.jsonl
  corpus.txt                   plain text for pretraining a tiny model from scratch
  heldout_questions.json       6 validation questions (3 en, 3 zh) with reference answers
  heldout_facts.json           48 hand-written questions (24 en, 24 zh) with the facts a
                               correct answer must contain (policy accuracy)

How the split works: every scenario has several user phrasings per language; the
last one is held out (validation only).  Scenarios marked holdout=True appear only
in validation.  The corpus and the DPO sets use train phrasings only, so nothing
in validation.jsonl or heldout_questions.json is seen during training.
"""
import json
import random
import re
import sys
import unicodedata
from pathlib import Path

SEED = 20261123

# ---------------------------------------------------------------------------
# Policy facts: the single source of every number the answers quote.
# ---------------------------------------------------------------------------
FACTS = {
    "shop_en": "Maple & Pine",
    "shop_zh": "枫松商城",
    "return_days": 30,
    "electronics_return_days": 15,
    "return_label_fee": 10,
    "inspect_days": 2,
    "refund_days": "5-7",
    "free_shipping_over": 99,
    "standard_fee": 8,
    "standard_days": "3-5",
    "express_fee": 15,
    "express_days": "1-2",
    "remote_days": "7-10",
    "ship_cutoff": "16:00",
    "stalled_tracking_days": 3,
    "damage_report_hours": 48,
    "warranty_years": 1,
    "price_adjust_days": 7,
    "points_per_yuan": 1,
    "points_per_yuan_off": 100,
    "points_max_pct": 20,
    "points_expiry_months": 12,
    "welcome_coupon_off": 15,
    "invoice_days": 3,
    "invoice_request_days": 90,
    "chat_hours": "9:00-21:00",
    "hotline": "400-820-1234",
    "hotline_hours": "9:00-18:00",
    "email": "service@mapleandpine.example",
    "email_reply_days": 1,
}
F = FACTS

SYSTEM = {
    "en": "You are the customer service assistant of Maple & Pine. "
          "Answer briefly and politely, following the shop policy.",
    "zh": "你是枫松商城的客服助手。请按照商城政策，简洁、礼貌地回答顾客的问题。",
}

# ---------------------------------------------------------------------------
# Product catalogue.  cat: apparel | shoes | electronics | home | final
# ---------------------------------------------------------------------------
PRODUCTS = [
    # key, cat, price, en name, zh name, en material, zh material, en care, zh care, sizes, colours (en, zh)
    ("sweater", "apparel", 399, "Merino Crewneck Sweater", "美利奴羊毛圆领毛衣",
     "100% merino wool", "100%美利奴羊毛", "hand wash cold and dry flat", "冷水手洗，平铺晾干",
     ["XS", "S", "M", "L", "XL"], [("oatmeal", "燕麦色"), ("navy", "藏青色"), ("forest green", "森林绿")]),
    ("linen", "apparel", 259, "Linen Button-Down Shirt", "亚麻长袖衬衫",
     "100% European linen", "100%欧洲亚麻", "machine wash at 30°C and hang to dry", "30°C机洗，悬挂晾干",
     ["S", "M", "L", "XL", "XXL"], [("white", "白色"), ("sky blue", "天蓝色"), ("sand", "沙色")]),
    ("chinos", "apparel", 299, "Slim-Fit Chinos", "修身休闲长裤",
     "98% cotton, 2% elastane", "98%棉，2%氨纶", "machine wash at 30°C inside out", "30°C反面机洗",
     ["28", "30", "32", "34", "36"], [("khaki", "卡其色"), ("black", "黑色"), ("olive", "橄榄绿")]),
    ("puffer", "apparel", 699, "Lightweight Down Jacket", "轻薄羽绒服",
     "nylon, filled with 90% white duck down", "尼龙面料，90%白鸭绒填充", "machine wash gentle and tumble dry low",
     "轻柔机洗，低温烘干", ["S", "M", "L", "XL"], [("black", "黑色"), ("navy", "藏青色"), ("burgundy", "酒红色")]),
    ("hoodie", "apparel", 229, "Organic Cotton Hoodie", "有机棉连帽卫衣",
     "100% organic cotton fleece", "100%有机棉抓绒", "machine wash cold and do not bleach", "冷水机洗，勿漂白",
     ["XS", "S", "M", "L", "XL"], [("grey marl", "麻灰色"), ("cream", "奶油色"), ("black", "黑色")]),
    ("scarf", "apparel", 189, "Silk Twill Scarf", "真丝斜纹围巾",
     "100% mulberry silk", "100%桑蚕丝", "dry clean only", "仅限干洗",
     ["one size"], [("maple red", "枫叶红"), ("ivory", "象牙白")]),
    ("runners", "shoes", 549, "Trail Running Shoes", "越野跑鞋",
     "breathable mesh, with a rubber outsole", "透气网面鞋面，橡胶大底", "wipe clean and air dry", "湿布擦拭，自然风干",
     ["EU 38", "EU 39", "EU 40", "EU 41", "EU 42", "EU 43"], [("grey", "灰色"), ("blue", "蓝色")]),
    ("boots", "shoes", 799, "Leather Ankle Boots", "真皮短靴",
     "full-grain leather, with a rubber sole", "头层牛皮，橡胶鞋底", "wipe clean and use leather balm", "湿布擦拭，定期涂护革油",
     ["EU 36", "EU 37", "EU 38", "EU 39", "EU 40", "EU 41"], [("cognac", "焦糖色"), ("black", "黑色")]),
    ("headphones", "electronics", 899, "Wireless Noise-Cancelling Headphones", "无线降噪耳机",
     "aluminium, with protein-leather ear cushions", "铝合金机身，蛋白皮耳罩", "wipe with a dry cloth", "用干布擦拭",
     [], [("black", "黑色"), ("silver", "银色")]),
    ("watch", "electronics", 1299, "Smart Fitness Watch", "智能运动手表",
     "aluminium, with a silicone strap", "铝合金表壳，硅胶表带", "rinse the strap with fresh water", "表带可用清水冲洗",
     [], [("black", "黑色"), ("pine green", "松绿色")]),
    ("powerbank", "electronics", 199, "20,000 mAh Power Bank", "20000毫安充电宝",
     "recycled plastic", "再生塑料外壳", "keep away from heat and water", "远离高温和水",
     [], [("white", "白色"), ("graphite", "石墨灰")]),
    ("speaker", "electronics", 349, "Portable Bluetooth Speaker", "便携蓝牙音箱",
     "splash-resistant plastic wrapped in fabric", "织物包覆，防泼溅机身", "wipe with a damp cloth", "用湿布擦拭",
     [], [("sand", "沙色"), ("charcoal", "炭黑色")]),
    ("kettle", "electronics", 239, "Electric Kettle 1.7 L", "1.7升电热水壶",
     "stainless steel", "不锈钢", "descale monthly with citric acid", "每月用柠檬酸除垢",
     [], [("white", "白色"), ("sage", "鼠尾草绿")]),
    ("dinnerware", "home", 459, "Stoneware Dinner Set (12 pieces)", "粗陶餐具套装（12件）",
     "glazed stoneware", "釉面粗陶", "dishwasher and microwave safe", "可用洗碗机和微波炉",
     [], [("speckled white", "斑点白"), ("slate", "石板灰")]),
    ("bedding", "home", 399, "Cotton Sateen Bedding Set", "纯棉贡缎四件套",
     "100% long-staple cotton sateen", "100%长绒棉贡缎", "machine wash at 40°C", "40°C机洗",
     ["1.5 m bed", "1.8 m bed"], [("white", "白色"), ("dove grey", "鸽灰色")]),
    ("candle", "home", 89, "Pine Forest Scented Candle", "松林香薰蜡烛",
     "soy wax, with a cotton wick", "大豆蜡，棉质烛芯", "trim the wick before lighting", "点燃前修剪烛芯",
     [], [("amber jar", "琥珀色玻璃罐")]),
    ("board", "home", 79, "Bamboo Cutting Board", "竹制砧板",
     "solid bamboo", "整块竹材", "hand wash and oil occasionally", "手洗，定期上油",
     [], [("natural", "原木色")]),
    ("beanie", "final", 49, "Clearance Wool Beanie (Final Sale)", "清仓羊毛帽（最终特价）",
     "wool blend", "羊毛混纺", "hand wash cold", "冷水手洗",
     ["one size"], [("rust", "铁锈红"), ("grey", "灰色")]),
    ("tee", "final", 59, "Clearance Graphic T-shirt (Final Sale)", "清仓印花T恤（最终特价）",
     "100% cotton", "100%棉", "machine wash cold", "冷水机洗",
     ["S", "M", "L", "XL"], [("white", "白色"), ("black", "黑色")]),
]
KEYS = ("key", "cat", "price", "name_en", "name_zh", "mat_en", "mat_zh", "care_en", "care_zh", "sizes", "colours")
PRODUCTS = [dict(zip(KEYS, p)) for p in PRODUCTS]

REMOTE = [("Xinjiang", "新疆"), ("Tibet", "西藏"), ("Qinghai", "青海"), ("Inner Mongolia", "内蒙古")]
CITIES = [("Shanghai", "上海"), ("Chengdu", "成都"), ("Hangzhou", "杭州"), ("Wuhan", "武汉"),
          ("Shenzhen", "深圳"), ("Xi'an", "西安"), ("Nanjing", "南京"), ("Qingdao", "青岛")]
ABROAD = [("Hong Kong", "香港"), ("Singapore", "新加坡"), ("Japan", "日本"), ("the US", "美国"), ("Macau", "澳门")]
COUPONS = ["AUTUMN20", "MP-SAVE30", "WELCOME15", "PINE50", "VIP100", "DOUBLE11"]
NAMES_EN = ["Anna", "Ben", "Chloe", "David", "Emma", "Felix", "Grace", "Henry", "Iris", "Jack", "Lily", "Oscar"]
NAMES_ZH = ["王女士", "李先生", "张女士", "刘先生", "陈女士", "杨先生", "赵女士", "周先生"]


# ---------------------------------------------------------------------------
# policy.md
# ---------------------------------------------------------------------------
def policy_sections():
    """(title_en, text_en, title_zh, text_zh) per section; also feeds the corpus."""
    return [
        ("Returns", f"Unused items with their original tags and packaging can be returned within "
         f"{F['return_days']} days of delivery. Electronics (headphones, watches, power banks, speakers, "
         f"small appliances) can be returned within {F['electronics_return_days']} days of delivery if unused "
         f"and in the original packaging. Items marked Final Sale cannot be returned or exchanged. Start a "
         f"return in My Orders > Return; we email a prepaid return label. For change-of-mind returns "
         f"¥{F['return_label_fee']} is deducted from the refund for the label; returns of faulty or wrong items "
         f"are free. Worn, washed or damaged-by-use items cannot be returned.",
         "退货", f"未使用、吊牌和原包装完好的商品，可在签收后{F['return_days']}天内申请退货。数码电子产品"
         f"（耳机、手表、充电宝、音箱、小家电）未使用且包装完好的，可在签收后{F['electronics_return_days']}天内退货。"
         f"标有“最终特价”的商品不支持退换。请在“我的订单 > 退货”中申请，我们会通过邮件发送预付退货面单。"
         f"非质量问题退货将从退款中扣除¥{F['return_label_fee']}面单费；质量问题或发错商品的退货免费。"
         f"已穿着、洗涤或使用损坏的商品不支持退货。"),
        ("Exchanges", f"Clothing and shoes can be exchanged for another size or colour of the same item within "
         f"{F['return_days']} days of delivery. The first exchange of each item is free (we pay shipping both ways); "
         f"a further exchange of the same item costs ¥{F['return_label_fee']} for the return label. If the size "
         f"you want is sold out, you can return the item for a refund instead. Start an exchange in My Orders > Exchange.",
         "换货", f"服装和鞋类可在签收后{F['return_days']}天内更换同款商品的其他尺码或颜色。每件商品首次换货免费"
         f"（往返运费由我们承担）；同一商品再次换货需支付¥{F['return_label_fee']}退货面单费。如所需尺码缺货，"
         f"可改为退货退款。请在“我的订单 > 换货”中申请。"),
        ("Refunds", f"Refunds go back to the original payment method within {F['refund_days']} business days after "
         f"we inspect the return. Inspection takes up to {F['inspect_days']} business days after the parcel reaches "
         f"our warehouse. Refunds cannot be sent to a different card or account. The original shipping fee is "
         f"refunded only when the item was faulty or wrong. Cancelled orders are refunded within "
         f"{F['refund_days']} business days.",
         "退款", f"退货验收后，退款将在{F['refund_days']}个工作日内原路退回。包裹到达仓库后，验收最多需要"
         f"{F['inspect_days']}个工作日。退款无法退到其他银行卡或账户。原运费仅在商品存在质量问题或发错货时退还。"
         f"已取消订单的退款在{F['refund_days']}个工作日内原路退回。"),
        ("Shipping", f"We ship within mainland China only. Orders placed before {F['ship_cutoff']} ship the same day. "
         f"Standard shipping takes {F['standard_days']} business days and is free on orders of "
         f"¥{F['free_shipping_over']} or more (otherwise ¥{F['standard_fee']}). Express shipping takes {F['express_days']} "
         f"business days and costs ¥{F['express_fee']}. Remote areas (Xinjiang, Tibet, Qinghai, Inner Mongolia) take "
         f"{F['remote_days']} business days by standard shipping, and express is not available there. We do not yet "
         f"ship to Hong Kong, Macau, Taiwan or abroad.",
         "配送", f"目前仅配送中国大陆地区。{F['ship_cutoff']}前下单当天发货。标准快递{F['standard_days']}个工作日送达，"
         f"订单满¥{F['free_shipping_over']}包邮（不满收取¥{F['standard_fee']}运费）。加急快递{F['express_days']}个工作日送达，"
         f"运费¥{F['express_fee']}。偏远地区（新疆、西藏、青海、内蒙古）标准快递需{F['remote_days']}个工作日，且不支持加急。"
         f"暂不支持配送至港澳台及海外。"),
        ("Order tracking", f"When an order ships we send the tracking number by SMS and email, and it appears in "
         f"My Orders > Track. Tracking can take up to 24 hours to update after shipment. If tracking has not moved for "
         f"{F['stalled_tracking_days']} business days, or a parcel shows delivered but has not arrived, we open an "
         f"investigation with the courier and send a free replacement or a full refund if it is lost.",
         "物流查询", f"订单发货后，我们会通过短信和邮件发送快递单号，也可在“我的订单 > 查看物流”中查询。"
         f"发货后物流信息最多需要24小时更新。如物流{F['stalled_tracking_days']}个工作日未更新，或显示已签收但未收到，"
         f"我们会向快递公司发起调查；如确认丢件，免费补发或全额退款。"),
        ("Cancellations and changes", f"Orders can be cancelled free of charge until they ship, in My Orders > Cancel. "
         f"The delivery address can be changed before shipment in My Orders > Edit address. Once an order has shipped "
         f"it cannot be cancelled or redirected; you can refuse the delivery or return the item after it arrives. "
         f"Cancelled orders cannot be restored; a coupon used on a cancelled order is returned to your account if it "
         f"has not expired.",
         "取消与修改订单", f"订单发货前可在“我的订单 > 取消订单”中免费取消，也可在“我的订单 > 修改地址”中修改收货地址。"
         f"订单一旦发货，将无法取消或改地址，您可以拒收或收货后申请退货。已取消的订单无法恢复；"
         f"取消订单所用的优惠券如未过期，会退回您的账户。"),
        ("Damaged, wrong or missing items", f"If an item arrives damaged, is the wrong item, or is missing from the "
         f"parcel, report it within {F['damage_report_hours']} hours of delivery in My Orders > Report a problem with "
         f"photos of the item and the packaging. We send a free replacement (shipped within 1 business day of approval) "
         f"or a full refund including shipping, and you pay nothing for the return. Reports after {F['damage_report_hours']} hours are handled as ordinary "
         f"returns or warranty claims.",
         "破损、错发或漏发", f"如商品破损、发错或漏发，请在签收后{F['damage_report_hours']}小时内，"
         f"在“我的订单 > 问题反馈”中上传商品和外包装照片。我们将免费补发（审核通过后1个工作日内发出）或全额退款（含运费），退回费用由我们承担。"
         f"超过{F['damage_report_hours']}小时的反馈按普通退货或保修处理。"),
        ("Warranty", f"Electronics come with a {F['warranty_years']}-year warranty from the delivery date covering "
         f"manufacturing defects. We repair or replace the item free of charge; start a claim in My Orders > Warranty "
         f"with the order number. Accidental damage, water damage and normal wear are not covered; for those, and after "
         f"the warranty ends, we can arrange a paid repair quote. Clothing, shoes and "
         f"home goods are not covered by the warranty; a faulty one can be returned within {F['return_days']} days "
         f"of delivery.",
         "保修", f"数码电子产品自签收之日起享受{F['warranty_years']}年保修，涵盖制造缺陷，我们将免费维修或更换。"
         f"请凭订单号在“我的订单 > 保修”中申请。意外损坏、进水和正常磨损不在保修范围内；此类情况及过保后可为您安排付费维修报价。"
         f"服装、鞋类和家居用品不提供保修，"
         f"如有质量问题可在签收后{F['return_days']}天内退货。"),
        ("Before you buy", "Every clothing and shoe page has a size chart; our clothing fits true to size, and if you "
         "are between sizes we suggest the larger one. Materials and care instructions are listed on each product "
         "page. Stock shown on the product page is live. If a size or colour is sold out, tap Notify me to get an SMS "
         "or email when it is restocked; we cannot promise restock dates.",
         "售前咨询", "每款服装和鞋子的页面都有尺码表；我们的服装尺码标准，如介于两个尺码之间，建议选大一码。"
         "商品页面注明了材质和洗护方式。页面显示的库存为实时库存。如尺码或颜色缺货，可点击“到货提醒”，"
         "补货后我们会通过短信或邮件通知您；补货时间无法保证。"),
        ("Coupons and member points", f"One coupon can be used per order; coupons cannot be combined with each other. "
         f"Each coupon shows its minimum spend and expires at 23:59 on the date shown; expired coupons cannot be "
         f"reissued or extended. Coupons do not apply to Final Sale items. New members get ¥{F['welcome_coupon_off']} "
         f"off their first order of ¥{F['free_shipping_over']} or more. Members earn {F['points_per_yuan']} point per ¥1 spent; "
         f"{F['points_per_yuan_off']} points = ¥1 off, usable for up to {F['points_max_pct']}% of an order and "
         f"together with a coupon. Points expire {F['points_expiry_months']} months after they are earned.",
         "优惠券与会员积分", f"每笔订单限用一张优惠券，优惠券不可叠加使用。每张优惠券标明使用门槛，有效期至所示日期23:59；"
         f"过期优惠券无法补发或延期。优惠券不适用于最终特价商品。新会员首单满¥{F['free_shipping_over']}立减"
         f"¥{F['welcome_coupon_off']}。会员每消费¥1得{F['points_per_yuan']}积分；{F['points_per_yuan_off']}积分抵¥1，"
         f"最多抵扣订单金额的{F['points_max_pct']}%，可与优惠券同时使用。积分自获得之日起{F['points_expiry_months']}个月后过期。"),
        ("Price adjustment", f"If the price of an item drops within {F['price_adjust_days']} days of your purchase, "
         f"contact us with the order number and we refund the difference once per item to the original payment method. "
         f"Flash sales and coupon discounts are not eligible.",
         "价格保护", f"如购买后{F['price_adjust_days']}天内商品降价，请提供订单号联系我们，每件商品可申请一次差价退款，原路退回。"
         f"限时秒杀和优惠券折扣不适用价格保护。"),
        ("Invoices", f"Electronic invoices are issued after delivery: in My Orders > Invoice choose Personal or Company "
         f"(company name and tax ID), and the invoice is emailed within {F['invoice_days']} business days. Invoices can "
         f"be requested or corrected within {F['invoice_request_days']} days of delivery.",
         "发票", f"签收后可开具电子发票：在“我的订单 > 申请发票”中选择个人或单位（需填写单位名称和税号），"
         f"发票将在{F['invoice_days']}个工作日内发送至您的邮箱。签收后{F['invoice_request_days']}天内可申请开票或修改发票信息。"),
        ("Contact", f"Online chat: every day {F['chat_hours']}; type \"agent\" to reach a person. Hotline {F['hotline']}: Monday to Friday "
         f"{F['hotline_hours']}. Email {F['email']}: we reply within {F['email_reply_days']} business day.",
         "联系我们", f"在线客服：每天{F['chat_hours']}，输入“人工”可转接客服人员。客服热线{F['hotline']}：周一至周五{F['hotline_hours']}。"
         f"邮箱{F['email']}：{F['email_reply_days']}个工作日内回复。"),
    ]


KEY_FACTS = [
    ("return_window_days", F["return_days"], "return window (days after delivery)", "退货期限（签收后天数）"),
    ("electronics_return_window_days", F["electronics_return_days"], "return window for electronics", "数码产品退货期限"),
    ("exchange_window_days", F["return_days"], "exchange window (days after delivery)", "换货期限"),
    ("return_label_fee_yuan", F["return_label_fee"], "change-of-mind return label fee", "非质量问题退货面单费"),
    ("refund_business_days", F["refund_days"], "refund after inspection (business days)", "验收后退款（工作日）"),
    ("free_shipping_over_yuan", F["free_shipping_over"], "free standard shipping threshold", "包邮门槛"),
    ("standard_shipping_fee_yuan", F["standard_fee"], "standard shipping fee below the threshold", "不满门槛的标准运费"),
    ("standard_shipping_business_days", F["standard_days"], "standard shipping time", "标准快递时效"),
    ("express_shipping_fee_yuan", F["express_fee"], "express shipping fee", "加急运费"),
    ("express_shipping_business_days", F["express_days"], "express shipping time", "加急快递时效"),
    ("remote_area_business_days", F["remote_days"], "standard shipping to remote areas", "偏远地区时效"),
    ("damage_report_hours", F["damage_report_hours"], "report damaged/wrong/missing items within", "破损错发反馈时限"),
    ("warranty_years", F["warranty_years"], "electronics warranty", "数码产品保修"),
    ("price_adjustment_days", F["price_adjust_days"], "price adjustment window", "价格保护期"),
    ("points_per_yuan_off", F["points_per_yuan_off"], "points for ¥1 off", "抵扣¥1所需积分"),
    ("points_max_percent", F["points_max_pct"], "points cap per order (%)", "积分抵扣上限（%）"),
    ("invoice_business_days", F["invoice_days"], "e-invoice emailed within", "电子发票发送时限"),
    ("chat_hours", F["chat_hours"], "online chat hours (daily)", "在线客服时间（每天）"),
    ("hotline", F["hotline"], "hotline (Mon-Fri " + F["hotline_hours"] + ")", "客服热线（周一至周五）"),
]


def render_policy():
    out = [f"# {F['shop_en']} / {F['shop_zh']} — customer service policy", "",
           "This policy is fictional. It was written for ftplat's bundled customer-service dataset, and every "
           "answer in `train.jsonl`, `validation.jsonl`, `preference*.jsonl` and `corpus.txt` follows it. "
           "This file is generated by `generate.py`; edit the tables there.", "",
           "本政策为虚构内容，供 ftplat 自带的客服数据集使用；数据集中的所有回答均与本政策一致。", "",
           "## Key facts / 关键数字", "",
           "`tests/system/test_bundled_dataset.py` reads this table and checks the answers against it.", "",
           "| key | value | meaning | 说明 |", "| --- | --- | --- | --- |"]
    for k, v, en, zh in KEY_FACTS:
        out.append(f"| {k} | {v} | {en} | {zh} |")
    out += ["", "## English", ""]
    for t_en, en, _, _ in policy_sections():
        out += [f"### {t_en}", "", en, ""]
    out += ["## 中文", ""]
    for _, _, t_zh, zh in policy_sections():
        out += [f"### {t_zh}", "", zh, ""]
    return "\n".join(out)


# ---------------------------------------------------------------------------
# Scenarios.  user[lang]: phrasings (the LAST one is held out for validation);
# answer[lang]: answer bodies (any may be used); follow: follow-up turns as
# (user{lang: [...]}, answer{lang: [...]}).  {slots} come from make_slots().
# holdout=True: the whole scenario appears only in validation.
# ---------------------------------------------------------------------------
def S(name, topic, cats, user, answer, follow=(), holdout=False):
    return {"name": name, "topic": topic, "cats": cats, "user": user, "answer": answer,
            "follow": list(follow), "holdout": holdout}


FU_RETURN_HOW = (
    {"en": ["How do I send it back?", "ok how do i return it", "What are the steps to return it?"],
     "zh": ["那怎么寄回去呢？", "退货流程是怎样的？", "具体怎么操作退货"]},
    {"en": ["Go to My Orders > Return, pick the item, and we'll email you a prepaid return label to print and attach.",
            "Open My Orders, choose Return next to the item, and use the prepaid label we email you."],
     "zh": ["请在“我的订单 > 退货”中选择商品提交申请，我们会把预付退货面单发到您的邮箱，打印贴在包裹上即可。",
            "打开“我的订单”，点击商品旁的“退货”，按邮件中的预付面单寄回即可。"]})
FU_REFUND_WHEN = (
    {"en": ["And when do I get my money back?", "how long for the refund?", "When will the refund arrive?"],
     "zh": ["那退款多久能到账？", "钱什么时候退回来", "退款要多久？"]},
    {"en": [f"Once the parcel reaches us we inspect it within {F['inspect_days']} business days. The refund then goes back to your original payment method within {F['refund_days']} business days.",
            f"Your refund goes back to the original payment method within {F['refund_days']} business days after we inspect the return."],
     "zh": [f"包裹到仓后{F['inspect_days']}个工作日内完成验收。验收后退款将在{F['refund_days']}个工作日内原路退回。",
            f"退货验收后，退款会在{F['refund_days']}个工作日内原路退回到您的支付账户。"]})
FU_LABEL_FEE = (
    {"en": ["Do I have to pay for the return shipping?", "is the return free?", "Will the return cost me anything?"],
     "zh": ["退货运费要我出吗？", "退货要钱吗", "寄回的运费谁承担？"]},
    {"en": [f"For change-of-mind returns, ¥{F['return_label_fee']} is deducted from the refund for the prepaid label. If the item is faulty or wrong, the return is free."],
     "zh": [f"非质量问题退货会从退款中扣除¥{F['return_label_fee']}面单费；如果是质量问题或发错货，退货免费。"]})
FU_EXPRESS = (
    {"en": ["Can I pay for faster delivery?", "is there express?", "What about express shipping?"],
     "zh": ["可以加急吗？", "有没有更快的快递", "加急要多少钱？"]},
    {"en": [f"Yes! Express shipping takes {F['express_days']} business days and costs ¥{F['express_fee']}; choose it at checkout."],
     "zh": [f"可以的！加急快递{F['express_days']}个工作日送达，运费¥{F['express_fee']}，结算时选择即可。"]})
FU_TRACK = (
    {"en": ["How will I know when it ships?", "how do i track it", "Where can I see the tracking?"],
     "zh": ["发货了怎么通知我？", "怎么查物流", "在哪里看快递单号？"]},
    {"en": ["We'll send the tracking number by SMS and email as soon as it ships, and you can follow it in My Orders > Track."],
     "zh": ["发货后我们会通过短信和邮件发送快递单号，您也可以在“我的订单 > 查看物流”中查询。"]})
FU_REPLACEMENT_WHEN = (
    {"en": ["How soon will the replacement arrive?", "when do i get the new one", "And the replacement ships when?"],
     "zh": ["补发的多久能到？", "新的什么时候发", "换新的要等多久？"]},
    {"en": [f"The replacement ships within 1 business day of your report being approved, by free standard shipping ({F['standard_days']} business days)."],
     "zh": [f"反馈审核通过后1个工作日内为您免费补发，标准快递{F['standard_days']}个工作日送达。"]})
FU_POINTS_WITH_COUPON = (
    {"en": ["Can I use points together with the coupon?", "points + coupon ok?", "Can points be combined with it?"],
     "zh": ["积分能和优惠券一起用吗？", "积分和券能同时用不", "可以同时用积分吗？"]},
    {"en": [f"Yes, points can be used together with one coupon: {F['points_per_yuan_off']} points = ¥1 off, up to {F['points_max_pct']}% of the order."],
     "zh": [f"可以，积分可与一张优惠券同时使用：{F['points_per_yuan_off']}积分抵¥1，最多抵扣订单金额的{F['points_max_pct']}%。"]})

FU_CONTACT = (
    {"en": ["Can I call someone about this?", "is there a phone number?", "How do I reach a person if I need to?"],
     "zh": ["可以打电话找人处理吗？", "有客服电话吗", "需要的话怎么联系人工？"]},
    {"en": [f"You can call our hotline {F['hotline']}, open Monday to Friday {F['hotline_hours']}, and online chat is open every day {F['chat_hours']}."],
     "zh": [f"可以拨打客服热线{F['hotline']}（周一至周五{F['hotline_hours']}），在线客服每天{F['chat_hours']}在线。"]})
FU_CANCEL_REFUND = (
    {"en": ["When do I get the money back?", "refund how long?", "How long until the payment is returned?"],
     "zh": ["钱多久退回来？", "退款多久到", "付的钱什么时候退？"]},
    {"en": [f"The refund goes back to your original payment method within {F['refund_days']} business days of the cancellation."],
     "zh": [f"取消后，退款将在{F['refund_days']}个工作日内原路退回。"]})
FU_EXCHANGE_FREE = (
    {"en": ["And if it doesn't fit?", "what if the size is wrong", "Can I swap it if it's too big?"],
     "zh": ["如果不合适怎么办？", "尺码不对能换吗", "大了可以换吗？"]},
    {"en": [f"No problem: you can exchange it for another size within {F['return_days']} days of delivery, and the first exchange is free."],
     "zh": [f"没问题，签收后{F['return_days']}天内可以更换尺码，首次换货免费。"]})
FU_INVOICE_COMPANY = (
    {"en": ["Can it be in my company's name instead?", "company invoice ok?", "Could you put our company and tax ID on it?"],
     "zh": ["可以开公司抬头吗？", "能开单位的吗", "能写我们公司名称和税号吗？"]},
    {"en": ["Yes, choose Company in My Orders > Invoice and enter the company name and tax ID."],
     "zh": ["可以的，在“我的订单 > 申请发票”中选择单位，填写单位名称和税号即可。"]})

SCENARIOS = [
    # ---------------------------------------------------------------- returns
    S("return_basic", "returns", ("apparel", "shoes", "home"),
      {"en": ["Can I return the {p} from order {order}? It arrived {d30} days ago.",
              "I'd like to return my {p}, I changed my mind. Order {order}.",
              "Is it possible to send back the {p}? Never used it, tags still on.",
              "what's your return policy? want to return the {p}",
              "Hello, order {order}: the {p} doesn't suit me. Can I get a refund if I send it back?"],
       "zh": ["订单{order}的{p}可以退货吗？签收{d30}天了。",
              "{p}不太喜欢，想退掉，订单号{order}。",
              "买的{p}还没用过，吊牌都在，能退吗？",
              "你们的退货政策是什么？想退{p}",
              "您好，订单{order}里的{p}不合适，寄回去能退款吗？"]},
      {"en": ["Yes, unused items with tags attached can be returned within {rd} days of delivery. Start it in My Orders > Return and we'll email a prepaid label.",
              "Of course. You can return unused items with their tags within {rd} days of delivery; just open My Orders > Return for order {order}."],
       "zh": ["可以的，未使用且吊牌完好的商品可在签收后{rd}天内退货。请在“我的订单 > 退货”中申请，我们会发送预付面单。",
              "当然可以。未使用、吊牌完好的商品签收后{rd}天内可退，在“我的订单 > 退货”中选择订单{order}即可。"]},
      follow=[FU_RETURN_HOW, FU_REFUND_WHEN, FU_LABEL_FEE]),
    S("return_electronics", "returns", ("electronics",),
      {"en": ["Can I return the {p}? I opened the box but I don't like it.",
              "I want to return the {p} I got {d15} days ago, order {order}.",
              "return window for electronics? thinking of sending back my {p}",
              "Do electronics like the {p} have the same return period as clothes?"],
       "zh": ["{p}拆封了但不喜欢，可以退吗？",
              "{d15}天前收到的{p}想退货，订单{order}。",
              "数码产品退货期限是多久？想退{p}",
              "{p}这种电子产品和衣服的退货时间一样吗？"]},
      {"en": ["Electronics can be returned within {ed} days of delivery if unused and in the original packaging. You can start the return in My Orders > Return.",
              "Electronics such as the {p} can be returned within {ed} days of delivery, unused and in the original box. Please start it in My Orders > Return."],
       "zh": ["数码产品未使用且包装完好的，可在签收后{ed}天内退货，请在“我的订单 > 退货”中申请。",
              "{p}属于数码产品，签收后{ed}天内、未使用且包装完好可以退货，在“我的订单 > 退货”中申请即可。"]},
      follow=[FU_REFUND_WHEN, FU_LABEL_FEE]),
    S("return_final_sale", "returns", ("final",),
      {"en": ["Can I return the {p}? It's too small.",
              "I bought the {p} on clearance. Can I exchange or return it?",
              "want to send back {p} from order {order}",
              "The {p} I got in the sale doesn't fit, can I get my money back?"],
       "zh": ["{p}太小了，能退吗？",
              "清仓买的{p}可以退换吗？",
              "订单{order}的{p}想退",
              "特价买的{p}不合身，能退款吗？"]},
      {"en": ["I'm sorry, items marked Final Sale, like the {p}, can't be returned or exchanged. If it arrived damaged, please report it within {dh} hours of delivery.",
              "I'm sorry, but Final Sale items can't be returned or exchanged, as noted on the product page."],
       "zh": ["很抱歉，{p}属于最终特价商品，不支持退换。如收到时有破损，请在签收后{dh}小时内反馈。",
              "很抱歉，标有“最终特价”的商品不支持退换货，商品页面上有注明。"]}),
    S("return_late", "returns", ("apparel", "shoes", "home"),
      {"en": ["I got the {p} {dlate} days ago. Can I still return it?",
              "Order {order}, delivered over a month ago. Is it too late to return the {p}?",
              "can i return {p} after {dlate} days? never worn",
              "Just found the {p} in my closet, never used, bought it {dlate} days ago. Return possible?"],
       "zh": ["{p}收到{dlate}天了，还能退吗？",
              "订单{order}签收一个多月了，{p}还能退货吗？",
              "{dlate}天了能退{p}吗 没穿过",
              "刚翻出来一件{p}，没用过，{dlate}天前买的，还能退吗？"]},
      {"en": ["I'm sorry, returns are accepted within {rd} days of delivery, so this order is outside the return window and can't be returned."],
       "zh": ["很抱歉，退货需在签收后{rd}天内申请，您的订单已超过退货期限，无法退货。"]}),
    S("return_worn", "returns", ("apparel", "shoes"),
      {"en": ["I wore the {p} once and washed it, can I still return it?",
              "Can I return the {p} if I've already worn it outside?"],
       "zh": ["{p}穿过一次也洗过了，还能退吗？",
              "{p}已经穿出门了，还可以退货吗？"]},
      {"en": ["I'm sorry, returns must be unused with tags attached, so worn or washed items can't be returned. If it has a defect, please send us photos and we'll take a look."],
       "zh": ["很抱歉，退货商品需未使用且吊牌完好，已穿着或洗涤的商品无法退货。如有质量问题，请发照片给我们查看。"]},
      holdout=True),
    # -------------------------------------------------------------- exchanges
    S("exchange_size", "exchanges", ("apparel", "shoes"),
      {"en": ["The {p} is too small. Can I swap it for a {new_size}?",
              "Order {order}: I need the {p} one size up, in {new_size}.",
              "exchange {p} size {size} for {new_size} pls",
              "Hi! The {p} in {size} is a bit tight. How do I exchange it for a {new_size}?"],
       "zh": ["{p}小了，可以换成{new_size}码吗？",
              "订单{order}的{p}想换大一码，换{new_size}。",
              "{p} {size}码换{new_size}码",
              "您好，{p}{size}码有点紧，怎么换成{new_size}码？"]},
      {"en": ["Of course! Sizes and colours can be exchanged within {rd} days of delivery, and the first exchange of each item is free. Choose size {new_size} in My Orders > Exchange.",
              "Yes, you can exchange it for size {new_size} within {rd} days of delivery. Your first exchange is free, as we cover shipping both ways; start it in My Orders > Exchange."],
       "zh": ["当然可以！签收后{rd}天内可更换尺码或颜色，每件商品首次换货免费。请在“我的订单 > 换货”中选择{new_size}码。",
              "可以的，签收后{rd}天内可以换成{new_size}码，首次换货免费，往返运费由我们承担，在“我的订单 > 换货”中申请即可。"]},
      follow=[FU_TRACK]),
    S("exchange_colour", "exchanges", ("apparel", "shoes"),
      {"en": ["Can I change the colour of my {p} from {colour} to {new_colour}?",
              "The {colour} {p} looks different in person. Exchange for {new_colour}?",
              "swap colour on {p} to {new_colour}, order {order}",
              "I'd prefer the {p} in {new_colour} instead of {colour}. Is that possible?"],
       "zh": ["{p}能把{colour}换成{new_colour}吗？",
              "{colour}的{p}实物和图片不太一样，能换{new_colour}吗？",
              "{p}换{new_colour} 订单{order}",
              "{p}想要{new_colour}，不要{colour}了，可以换吗？"]},
      {"en": ["Yes! You can exchange it for {new_colour} within {rd} days of delivery, and the first exchange is free. Just use My Orders > Exchange."],
       "zh": ["可以的！签收后{rd}天内可以换成{new_colour}，首次换货免费，在“我的订单 > 换货”中申请即可。"]},
      follow=[FU_TRACK]),
    S("exchange_again", "exchanges", ("apparel", "shoes"),
      {"en": ["I already exchanged the {p} once and the new size still doesn't fit. Can I exchange again?",
              "second exchange for {p}, is it still free?",
              "Do I have to pay if I exchange the {p} a second time?"],
       "zh": ["{p}已经换过一次了，还是不合适，能再换吗？",
              "{p}第二次换货还免费吗",
              "{p}再换一次要付钱吗？"]},
      {"en": ["Yes, you can exchange again within {rd} days of delivery. Only the first exchange is free, so a second one costs ¥{fee} for the return label."],
       "zh": ["可以再次换货，需在签收后{rd}天内申请。每件商品仅首次换货免费，再次换货需支付¥{fee}退货面单费。"]}),
    S("exchange_sold_out", "exchanges", ("apparel", "shoes"),
      {"en": ["I want to exchange my {p} for {new_size} but it's sold out. What can I do?",
              "{new_size} is out of stock for the {p}. Options?"],
       "zh": ["{p}想换{new_size}码，但是缺货了，怎么办？",
              "{p}的{new_size}码没货了，还有什么办法？"]},
      {"en": ["I'm sorry about that! You can return it for a refund within {rd} days of delivery, or tap Notify me on the product page to hear when {new_size} is back."],
       "zh": ["很抱歉！您可以在签收后{rd}天内退货退款，或在商品页点击“到货提醒”，{new_size}码补货后会通知您。"]},
      holdout=True),
    # ---------------------------------------------------------------- refunds
    S("refund_when", "refunds", ("apparel", "shoes", "home", "electronics"),
      {"en": ["I sent back the {p} last week. When will I get my refund?",
              "How long do refunds take? Order {order}.",
              "refund for {order} not received yet, how long does it take",
              "My return for order {order} was delivered to your warehouse yesterday. When is the refund issued?"],
       "zh": ["{p}上周寄回了，退款什么时候到？",
              "退款一般要多久？订单{order}。",
              "{order}退款还没到，要多久",
              "订单{order}的退货昨天已经到你们仓库了，什么时候退款？"]},
      {"en": ["We inspect returns within {idays} business days of arrival. Your refund then goes back to your original payment method within {refd} business days.",
              "Refunds go back to your original payment method within {refd} business days after we inspect the return. Inspection takes up to {idays} business days."],
       "zh": ["退货到仓后{idays}个工作日内完成验收。验收后退款会在{refd}个工作日内原路退回。",
              "退货验收后，退款将在{refd}个工作日内原路退回。验收最多需要{idays}个工作日。"]},
      follow=[FU_CONTACT]),
    S("refund_method", "refunds", ("apparel", "shoes", "home", "electronics"),
      {"en": ["Can you refund me to a different card? My old one was cancelled.",
              "Please send the refund for {order} to my Alipay instead of my credit card.",
              "refund to another account possible?",
              "I paid by WeChat Pay but I'd like the refund to my bank card. Can you do that?"],
       "zh": ["退款能退到别的银行卡吗？原来的卡注销了。",
              "订单{order}的退款能退到支付宝吗？我是用信用卡付的。",
              "退款能换个账户吗",
              "我用微信付的款，退款能退到银行卡吗？"]},
      {"en": ["I'm sorry, refunds can only go back to the original payment method. If that card or account was closed, your bank or payment provider will pass it on to you."],
       "zh": ["很抱歉，退款只能原路退回到原支付方式。如原卡或账户已注销，银行或支付平台会将款项转给您。"]}),
    S("refund_shipping_fee", "refunds", ("apparel", "shoes", "home"),
      {"en": ["Will I get the shipping fee back if I return the {p}?",
              "do you refund shipping on returns?",
              "Is the ¥{sfee} delivery fee refunded too when I return my order?"],
       "zh": ["退{p}的话运费会退吗？",
              "退货退运费吗",
              "退货的时候¥{sfee}运费也会退吗？"]},
      {"en": ["The original shipping fee is refunded only if the item was faulty or wrong. For change-of-mind returns, ¥{fee} is also deducted for the return label."],
       "zh": ["原运费仅在商品有质量问题或发错货时退还。非质量问题退货，还会扣除¥{fee}退货面单费。"]}),
    S("refund_missing", "refunds", ("apparel", "shoes", "home", "electronics"),
      {"en": ["Your warehouse checked my return 10 business days ago and I still have no refund for {order}!",
              "It's been two weeks since you inspected my return and the money isn't back. What's going on?"],
       "zh": ["你们10个工作日前就验收了我的退货，订单{order}的钱还没退！",
              "验收都两周了，退款还没到账，怎么回事？"]},
      {"en": ["I'm sorry for the wait. Refunds normally arrive within {refd} business days after inspection, so I've escalated your order to our payments team and we'll email you the transaction reference."],
       "zh": ["很抱歉让您久等。正常情况下验收后{refd}个工作日内退款到账，我已将您的订单提交给财务加急处理，并会邮件告知您交易流水号。"]},
      holdout=True),
    # --------------------------------------------------------------- shipping
    S("shipping_time", "shipping", ("apparel", "shoes", "home", "electronics"),
      {"en": ["How long does delivery take to {city}?",
              "When will I get my {p} if I order today?",
              "shipping time?",
              "If I order the {p} now, how many days until it arrives in {city}?"],
       "zh": ["发{city}要几天到？",
              "今天下单{p}，多久能收到？",
              "多久发货到货",
              "现在买{p}的话，寄到{city}要几天？"]},
      {"en": ["Orders placed before {cutoff} ship the same day. Standard shipping takes {sdays} business days and is free on orders of ¥{free} or more. Express takes {xdays} business days for ¥{xfee}.",
              "Standard shipping takes {sdays} business days and is free on orders of ¥{free} or more (otherwise ¥{sfee}). Orders placed before {cutoff} ship the same day."],
       "zh": ["{cutoff}前下单当天发货。标准快递{sdays}个工作日送达，满¥{free}包邮。加急快递{xdays}个工作日送达，运费¥{xfee}。",
              "标准快递{sdays}个工作日送达，订单满¥{free}包邮，不满收¥{sfee}运费。{cutoff}前下单当天发货。"]},
      follow=[FU_EXPRESS, FU_TRACK]),
    S("shipping_free", "shipping", ("home", "final"),
      {"en": ["My cart is ¥{amount}. Do I get free shipping?",
              "Is shipping free? I'm only buying the {p}.",
              "free delivery threshold?",
              "How much more do I need to spend for free shipping? Cart total is ¥{amount}."],
       "zh": ["购物车¥{amount}，包邮吗？",
              "只买一个{p}包邮吗？",
              "多少钱包邮",
              "我购物车现在¥{amount}，还差多少包邮？"]},
      {"en": ["Standard shipping is free on orders of ¥{free} or more. Your cart is ¥{amount}, so add ¥{need} more, or the standard fee is ¥{sfee}.",
              "Standard shipping is free on orders of ¥{free} or more; below that, the standard fee is ¥{sfee}."],
       "zh": ["订单满¥{free}包邮。您的购物车是¥{amount}，再买¥{need}即可包邮，否则标准运费为¥{sfee}。",
              "订单满¥{free}包邮，不满收取¥{sfee}标准运费。"]},
      follow=[FU_EXPRESS]),
    S("shipping_express", "shipping", ("apparel", "shoes", "electronics"),
      {"en": ["I need the {p} by Friday for a gift. Can you ship it faster?",
              "do you have express delivery? how much",
              "Is next-day shipping possible to {city}?",
              "What's the fastest way to get the {p} to {city}?"],
       "zh": ["{p}周五前要送人，能快点发吗？",
              "有加急吗 多少钱",
              "发{city}能次日达吗？",
              "{p}最快多久能送到{city}？"]},
      {"en": ["Express shipping takes {xdays} business days and costs ¥{xfee}. Orders placed before {cutoff} ship the same day, so choose Express at checkout."],
       "zh": ["加急快递{xdays}个工作日送达，运费¥{xfee}。{cutoff}前下单当天发货，结算时选择加急即可。"]}),
    S("shipping_remote", "shipping", ("apparel", "home", "electronics"),
      {"en": ["Do you deliver to {region}? How long does it take?",
              "I live in {region}. Can I get express?",
              "shipping to {region}??",
              "How many days to send the {p} to an address in {region}?"],
       "zh": ["能寄到{region}吗？要多久？",
              "我在{region}，可以发加急吗？",
              "发{region}吗",
              "{p}寄到{region}要几天？"]},
      {"en": ["Yes, we deliver to {region}. Standard shipping there takes {rdays} business days, and express isn't available in remote areas."],
       "zh": ["可以配送到{region}。偏远地区标准快递需{rdays}个工作日，暂不支持加急。"]},
      follow=[FU_TRACK]),
    S("shipping_abroad", "shipping", ("apparel", "home"),
      {"en": ["Do you ship to {abroad}?",
              "Can I order the {p} to an address in {abroad}?"],
       "zh": ["能寄到{abroad}吗？",
              "{p}可以发到{abroad}的地址吗？"]},
      {"en": ["I'm sorry, we currently ship only within mainland China, so we can't deliver to {abroad} yet."],
       "zh": ["很抱歉，我们目前仅配送中国大陆地区，暂时无法寄到{abroad}。"]},
      holdout=True),
    # --------------------------------------------------------------- tracking
    S("tracking_where", "tracking", ("apparel", "shoes", "home", "electronics"),
      {"en": ["Where is my order {order}?",
              "How can I track my {p}?",
              "wheres my package {order}",
              "I ordered the {p} two days ago. Has it shipped yet, and how do I follow it?"],
       "zh": ["我的订单{order}到哪了？",
              "{p}怎么查物流？",
              "{order}包裹在哪",
              "两天前买的{p}发货了吗？怎么查快递？"]},
      {"en": ["When an order ships we send the tracking number by SMS and email, and you can follow it in My Orders > Track. Tracking can take up to 24 hours to update after shipment."],
       "zh": ["订单发货后，我们会通过短信和邮件发送快递单号，您可以在“我的订单 > 查看物流”中查询。发货后物流信息最多需要24小时更新。"]}),
    S("tracking_stalled", "tracking", ("apparel", "shoes", "home", "electronics"),
      {"en": ["Tracking for {order} hasn't moved in {ustall} days. Is my parcel lost?",
              "My {p} has been stuck at the same depot for days!",
              "tracking not updating {order}",
              "The courier status for my order hasn't changed since Monday. Can you check?"],
       "zh": ["订单{order}的物流{ustall}天没动了，是不是丢了？",
              "{p}一直卡在同一个网点好几天了！",
              "{order}物流不更新",
              "我的快递从周一开始就没更新了，能帮忙查一下吗？"]},
      {"en": ["I'm sorry for the delay. When tracking hasn't moved for {stall} business days we open an investigation with the courier, and if the parcel is lost we send a free replacement or a full refund."],
       "zh": ["很抱歉耽误您了。物流{stall}个工作日未更新时，我们会向快递公司发起调查，如确认丢件，将免费补发或全额退款。"]},
      follow=[FU_CONTACT]),
    S("tracking_delivered_not_received", "tracking", ("apparel", "shoes", "home", "electronics"),
      {"en": ["Tracking says {order} was delivered but I never got it.",
              "It says delivered, but there's no parcel at my door!!",
              "The app shows my {p} as delivered yesterday. I don't have it."],
       "zh": ["物流显示订单{order}已签收，但我没收到。",
              "显示已签收，可门口根本没有包裹！！",
              "App显示{p}昨天签收了，我没拿到。"]},
      {"en": ["I'm sorry about that! Please check your parcel locker and with neighbours first. If it's not there, we'll open a courier investigation right away and send a free replacement or a full refund if it's lost."],
       "zh": ["很抱歉！请先查看快递柜或问问邻居。如仍未找到，我们会立即向快递公司发起调查，确认丢件后免费补发或全额退款。"]},
      follow=[FU_CONTACT]),
    # ---------------------------------------------------------- cancellations
    S("cancel_before_ship", "cancellations", ("apparel", "shoes", "home", "electronics"),
      {"en": ["Please cancel my order {order}.",
              "I ordered the {p} by mistake an hour ago. Can I cancel?",
              "cancel order {order}",
              "I'd like to cancel my order for the {p} before it ships, how?"],
       "zh": ["请帮我取消订单{order}。",
              "一小时前误买了{p}，能取消吗？",
              "取消订单{order}",
              "{p}还没发货，想取消订单，怎么操作？"]},
      {"en": ["Orders can be cancelled free of charge until they ship, in My Orders > Cancel. The refund goes back to your original payment method within {refd} business days."],
       "zh": ["订单发货前可以在“我的订单 > 取消订单”中免费取消。退款将在{refd}个工作日内原路退回。"]},
      follow=[FU_CANCEL_REFUND]),
    S("cancel_after_ship", "cancellations", ("apparel", "shoes", "home", "electronics"),
      {"en": ["I want to cancel {order} but it already shipped.",
              "Can I still cancel the {p}? Tracking says it's on the way.",
              "cancel shipped order?",
              "My order left your warehouse this morning but I don't need it anymore. Cancel please."],
       "zh": ["订单{order}想取消，但已经发货了。",
              "{p}物流显示在路上了，还能取消吗？",
              "已发货能取消吗",
              "订单今天早上已经出库了，我不想要了，帮我取消。"]},
      {"en": ["I'm sorry, shipped orders can't be cancelled. You can refuse the delivery, or return it within {rd} days of delivery once it arrives."],
       "zh": ["很抱歉，订单发货后无法取消。您可以拒收，或收货后在签收后{rd}天内申请退货。"]}),
    S("change_address", "cancellations", ("apparel", "shoes", "home", "electronics"),
      {"en": ["Can I change the delivery address for {order}? I'm moving to {city}.",
              "wrong address on my order, can you fix it",
              "I typed the wrong street number for order {order}. Can I update it?",
              "Is it possible to redirect my {p} to my office in {city}?"],
       "zh": ["订单{order}能改收货地址吗？我要搬去{city}了。",
              "地址填错了能改吗",
              "订单{order}的门牌号写错了，可以修改吗？",
              "{p}能改寄到我在{city}的公司吗？"]},
      {"en": ["Yes, if it hasn't shipped yet you can change the address in My Orders > Edit address. Once shipped, the address can't be changed."],
       "zh": ["如果还未发货，可以在“我的订单 > 修改地址”中修改。订单发货后将无法修改地址。"]}),
    S("cancel_restore", "cancellations", ("apparel", "home"),
      {"en": ["I cancelled {order} by accident. Can you restore it?",
              "Oops, I cancelled my order for the {p}. Can I undo that and keep my coupon?"],
       "zh": ["不小心取消了订单{order}，能恢复吗？",
              "误取消了{p}的订单，能撤回吗？优惠券还能用吗？"]},
      {"en": ["I'm sorry, cancelled orders can't be restored, so please place a new one. The coupon you used is returned to your account if it hasn't expired."],
       "zh": ["很抱歉，已取消的订单无法恢复，请重新下单。所用优惠券如未过期，会退回您的账户。"]},
      holdout=True),
    # ---------------------------------------------------------- damaged/wrong
    S("damaged", "damaged_wrong", ("home", "electronics"),
      {"en": ["My {p} arrived damaged. What now?",
              "The {p} from {order} came cracked!! Very disappointed.",
              "item broken on arrival",
              "I just opened the parcel and the {p} is damaged. The box was crushed."],
       "zh": ["{p}收到就坏了，怎么办？",
              "订单{order}的{p}到的时候裂了！！太失望了。",
              "收到就是坏的",
              "刚拆开包裹，{p}坏了，箱子都压扁了。"]},
      {"en": ["I'm so sorry! Please report it within {dh} hours of delivery in My Orders > Report a problem, with photos of the item and packaging. We'll send a free replacement or a full refund.",
              "I'm sorry it arrived like that. Send photos of the {p} and the box within {dh} hours of delivery via My Orders > Report a problem, and we'll replace it free or refund you in full."],
       "zh": ["非常抱歉！请在签收后{dh}小时内，在“我的订单 > 问题反馈”中上传商品和外包装照片，我们会免费补发或全额退款。",
              "很抱歉让您收到这样的商品。请在签收后{dh}小时内通过“我的订单 > 问题反馈”上传{p}和包装的照片，我们将免费补发或全额退款。"]},
      follow=[FU_CONTACT, FU_REPLACEMENT_WHEN]),
    S("wrong_item", "damaged_wrong", ("apparel", "shoes"),
      {"en": ["I ordered the {p} in {colour} but got {new_colour}.",
              "Wrong item in my parcel! I got a {other} instead of the {p}.",
              "received wrong size, ordered {size} got {new_size}",
              "Order {order} contains the wrong product. What should I do?"],
       "zh": ["我买的是{colour}{p}，收到的却是{new_colour}。",
              "发错货了！我买的是{p}，收到的是{other}。",
              "尺码发错了 买的{size}收到{new_size}",
              "订单{order}发错商品了，怎么处理？"]},
      {"en": ["I'm sorry for the mix-up! Please report it within {dh} hours of delivery in My Orders > Report a problem with a photo. We'll send the right item free and cover the return."],
       "zh": ["很抱歉发错了！请在签收后{dh}小时内在“我的订单 > 问题反馈”中上传照片，我们会免费补发正确商品，退回运费由我们承担。"]},
      follow=[FU_CONTACT, FU_REPLACEMENT_WHEN]),
    S("missing_item", "damaged_wrong", ("home", "apparel", "electronics"),
      {"en": ["My parcel for {order} arrived but the {p} is missing.",
              "Only one of my two items arrived, the {p} isn't in the box.",
              "missing item in package"],
       "zh": ["订单{order}的包裹到了，但{p}没在里面。",
              "买了两件只收到一件，{p}不在箱子里。",
              "包裹少东西了"]},
      {"en": ["I'm sorry about that! Please report it within {dh} hours of delivery in My Orders > Report a problem, with a photo of the parcel contents, and we'll send the missing item free."],
       "zh": ["很抱歉！请在签收后{dh}小时内在“我的订单 > 问题反馈”中上传包裹内物品的照片，我们会免费补发漏发的商品。"]}),
    S("damaged_late", "damaged_wrong", ("home",),
      {"en": ["I only noticed today that the {p} is chipped. It was delivered a week ago.",
              "Found damage on my {p} but the order arrived 6 days ago. Can you still help?"],
       "zh": ["今天才发现{p}有个缺口，是一周前收到的。",
              "{p}有破损，但订单6天前就签收了，还能处理吗？"]},
      {"en": ["I'm sorry! Damage reports are accepted within {dh} hours of delivery, so this can't be handled as transit damage. If the item is unused, you can still return it within {rd} days of delivery."],
       "zh": ["很抱歉！破损需在签收后{dh}小时内反馈，已无法按运输破损处理。如商品未使用，仍可在签收后{rd}天内申请退货。"]},
      holdout=True),
    # --------------------------------------------------------------- warranty
    S("warranty_claim", "warranty", ("electronics",),
      {"en": ["My {p} stopped working after {m_in} months. Is it under warranty?",
              "The {p} won't charge anymore, bought it in order {order}.",
              "warranty on {p}?",
              "How long is the warranty on the {p}, and what does it cover?"],
       "zh": ["{p}用了{m_in}个月就坏了，在保修期内吗？",
              "订单{order}买的{p}充不进电了。",
              "{p}保修多久",
              "{p}的保修期是多久？保修哪些问题？"]},
      {"en": ["Electronics come with a {wy}-year warranty from delivery covering manufacturing defects. Start a claim in My Orders > Warranty and we'll repair or replace it free.",
              "The {p} has a {wy}-year warranty from the delivery date for manufacturing defects. Please open a claim in My Orders > Warranty, and we'll repair or replace it at no cost."],
       "zh": ["数码产品自签收起享受{wy}年保修，涵盖制造缺陷。请在“我的订单 > 保修”中申请，我们会免费维修或更换。",
              "{p}自签收之日起保修{wy}年，制造缺陷可免费维修或更换，请在“我的订单 > 保修”中提交申请。"]},
      follow=[FU_CONTACT]),
    S("warranty_expired", "warranty", ("electronics",),
      {"en": ["My {p} broke after {m_out} months. Can you fix it for free?",
              "bought {p} over a year ago, now its dead. warranty?",
              "Is my {p} still covered? I got it {m_out} months ago."],
       "zh": ["{p}用了{m_out}个月坏了，能免费修吗？",
              "{p}买了一年多了 坏了 还保修吗",
              "{m_out}个月前买的{p}，还在保修期吗？"]},
      {"en": ["I'm sorry, the {wy}-year warranty runs from the delivery date, so it has ended for this item. Contact us with the order number and we can arrange a paid repair quote."],
       "zh": ["很抱歉，{wy}年保修期从签收日起计算，这件商品已过保修期。请提供订单号，我们可以为您安排付费维修报价。"]}),
    S("warranty_accident", "warranty", ("electronics",),
      {"en": ["I dropped my {p} in water and it won't turn on. Warranty?",
              "The screen cracked when I dropped my {p}. Is that covered?",
              "water damage covered??"],
       "zh": ["{p}掉水里开不了机了，保修吗？",
              "{p}摔了一下屏幕裂了，能保修吗？",
              "进水保修吗"]},
      {"en": ["I'm sorry to hear that. The {wy}-year warranty covers manufacturing defects only, so accidental and water damage aren't covered. We can arrange a paid repair quote if you'd like."],
       "zh": ["很遗憾听到这个消息。{wy}年保修仅涵盖制造缺陷，意外损坏和进水不在保修范围内。如需要，可为您安排付费维修报价。"]}),
    S("warranty_apparel", "warranty", ("shoes", "apparel"),
      {"en": ["Is there a warranty on the {p}? The seam came apart after two weeks.",
              "Do clothes and shoes have a warranty like electronics?"],
       "zh": ["{p}有保修吗？穿了两周开线了。",
              "衣服和鞋子也像数码产品一样保修吗？"]},
      {"en": ["The warranty covers electronics only. A faulty clothing or shoe item can be returned free within {rd} days of delivery, so please send us photos via My Orders > Report a problem."],
       "zh": ["保修仅适用于数码产品。服装鞋类如有质量问题，可在签收后{rd}天内免费退货，请在“我的订单 > 问题反馈”中上传照片。"]},
      holdout=True),
    # --------------------------------------------------------------- pre-sale
    S("presale_size", "presale", ("apparel", "shoes"),
      {"en": ["What size {p} should I get? I'm {h} cm and {w} kg.",
              "Does the {p} run small or large?",
              "sizing advice for {p}?",
              "I'm between {size} and {new_size} for the {p}. Which one do you recommend?"],
       "zh": ["我身高{h}厘米，体重{w}公斤，{p}穿什么码？",
              "{p}偏大还是偏小？",
              "{p}尺码怎么选",
              "{p}我在{size}和{new_size}之间，选哪个？"]},
      {"en": ["Our clothing fits true to size, and the size chart is on the product page. If you're between sizes, we suggest the larger one, and your first exchange is free."],
       "zh": ["我们的服装尺码标准，商品页面有详细尺码表。如介于两个尺码之间，建议选大一码，首次换货免费。"]},
      follow=[FU_EXCHANGE_FREE]),
    S("presale_material", "presale", ("apparel", "shoes", "home", "electronics"),
      {"en": ["What is the {p} made of?",
              "Is the {p} good quality? What's it made from?",
              "material of {p}?",
              "Could you tell me the material of the {p} before I buy?"],
       "zh": ["{p}是什么材质的？",
              "{p}用的什么料子？",
              "{p}材质",
              "下单前想问一下{p}的材质是什么？"]},
      {"en": ["The {p} is made of {mat}. Care instructions: {care}."],
       "zh": ["{p}的材质是{mat}。洗护方式：{care}。"]}),
    S("presale_stock", "presale", ("apparel", "shoes"),
      {"en": ["Is the {p} in {colour}, size {size} in stock?",
              "Do you have the {p} in {size}?",
              "{p} {size} available?",
              "Will you have more {p} in {colour}? It says sold out."],
       "zh": ["{colour}的{p}{size}码有货吗？",
              "{p}还有{size}码吗？",
              "{p} {size} 有没有",
              "{colour}{p}显示售罄了，还会补货吗？"]},
      {"en": ["The stock shown on the product page is live. If {size} is sold out, tap Notify me and we'll send an SMS or email when it's restocked.",
              "The stock shown on the product page is live. If it's sold out, tap Notify me and we'll send an SMS or email when it's restocked."],
       "zh": ["商品页显示的是实时库存。如{size}码缺货，点击“到货提醒”，补货后我们会通过短信或邮件通知您。",
              "商品页显示的是实时库存。如已售罄，点击“到货提醒”，补货后我们会通过短信或邮件通知您。"]},
      follow=[FU_EXCHANGE_FREE]),
    S("presale_restock", "presale", ("apparel", "shoes", "electronics"),
      {"en": ["When will the {p} be back in stock?",
              "any restock date for {p}?",
              "Can you tell me exactly when the {p} in {colour} is restocked?"],
       "zh": ["{p}什么时候补货？",
              "{p}补货日期是哪天",
              "{colour}的{p}具体哪天能补货？"]},
      {"en": ["I'm sorry, we can't promise restock dates. Tap Notify me on the product page and we'll send an SMS or email as soon as it's back."],
       "zh": ["很抱歉，补货时间无法保证。请在商品页点击“到货提醒”，到货后我们会第一时间短信或邮件通知您。"]}),
    S("presale_care", "presale", ("apparel", "home"),
      {"en": ["How do I wash the {p}?",
              "Any care tips for the {p} so it lasts?"],
       "zh": ["{p}怎么洗？",
              "{p}怎么保养才能用得久？"]},
      {"en": ["For the {p}: {care}. You'll also find the care instructions on the product page."],
       "zh": ["{p}的洗护方式：{care}。商品页面上也有洗护说明。"]},
      holdout=True),
    # ------------------------------------------------------------- promotions
    S("coupon_combine", "promotions", ("apparel", "shoes", "home"),
      {"en": ["Can I use two coupons on one order?",
              "I have {code} and another coupon, can I stack them?",
              "combine coupons?",
              "Why can't I apply both of my coupons to the {p}?"],
       "zh": ["一个订单能用两张优惠券吗？",
              "我有{code}和另一张券，能叠加吗？",
              "优惠券能叠加吗",
              "为什么买{p}不能同时用两张券？"]},
      {"en": ["Only one coupon can be used per order, and coupons can't be combined. You can still use member points together with that one coupon."],
       "zh": ["每笔订单限用一张优惠券，优惠券不可叠加。不过会员积分可以与这张优惠券同时使用。"]},
      follow=[FU_POINTS_WITH_COUPON]),
    S("coupon_not_working", "promotions", ("apparel", "shoes", "home", "final"),
      {"en": ["My coupon {code} isn't working at checkout.",
              "Why won't {code} apply to my order?",
              "coupon code invalid??",
              "I entered {code} for the {p} and it says not eligible."],
       "zh": ["优惠券{code}结算时用不了。",
              "为什么{code}用不了？",
              "优惠码无效？？",
              "买{p}输入{code}提示不可用。"]},
      {"en": ["I'm sorry for the trouble! Please check the coupon's minimum spend and expiry date (it ends at 23:59 on the date shown). Coupons also don't apply to Final Sale items, and only one coupon works per order."],
       "zh": ["抱歉给您添麻烦了！请确认订单是否达到券的使用门槛、是否已过有效期（到期日23:59失效）。优惠券不适用于最终特价商品，且每单限用一张。"]},
      follow=[FU_POINTS_WITH_COUPON]),
    S("coupon_expired", "promotions", ("apparel", "shoes", "home"),
      {"en": ["My coupon {code} expired yesterday. Can you extend it?",
              "coupon expired, can you resend one",
              "Could you reissue my expired {code} coupon? I forgot to use it."],
       "zh": ["优惠券{code}昨天过期了，能延期吗？",
              "券过期了 能补一张吗",
              "{code}忘记用过期了，能重新发一张吗？"]},
      {"en": ["I'm sorry, expired coupons can't be reissued or extended. Coupons end at 23:59 on the date shown, so keep an eye on our newsletter for new offers."],
       "zh": ["很抱歉，过期的优惠券无法补发或延期。优惠券在到期日23:59失效，欢迎关注我们的后续活动。"]}),
    S("points", "promotions", ("apparel", "shoes", "home", "electronics"),
      {"en": ["How do member points work?",
              "I have {points} points. How much are they worth?",
              "points value?",
              "Can I pay for the whole {p} with my points?"],
       "zh": ["会员积分怎么用？",
              "我有{points}积分，能抵多少钱？",
              "积分怎么算",
              "{p}能全部用积分支付吗？"]},
      {"en": ["You earn {ppy} point per ¥1 spent, and {ppo} points = ¥1 off, up to {pmax}% of an order. Points expire {pexp} months after you earn them.",
              "{points} points are worth ¥{pval}. Points ({ppo} = ¥1) can cover up to {pmax}% of an order and expire {pexp} months after they're earned."],
       "zh": ["每消费¥1得{ppy}积分，{ppo}积分抵¥1，最多抵扣订单金额的{pmax}%。积分在获得{pexp}个月后过期。",
              "{points}积分可抵¥{pval}。积分按{ppo}积分抵¥1计算，最多抵扣订单的{pmax}%，获得{pexp}个月后过期。"]}),
    S("welcome_coupon", "promotions", ("apparel", "home"),
      {"en": ["Is there a discount for my first order?",
              "Do new members get anything? I'm about to buy the {p}."],
       "zh": ["首单有优惠吗？",
              "新会员有什么福利吗？准备买{p}。"]},
      {"en": ["Yes! New members get ¥{wel} off their first order of ¥{free} or more. Sign up before checkout and the coupon appears in your account."],
       "zh": ["有的！新会员首单满¥{free}立减¥{wel}，结算前注册会员，优惠券会自动发放到您的账户。"]},
      holdout=True),
    # -------------------------------------------------------- price adjustment
    S("price_drop", "price_adjustment", ("apparel", "shoes", "home", "electronics"),
      {"en": ["I bought the {p} for ¥{price} {d7} days ago and now it's ¥{new_price}. Can I get the difference?",
              "The {p} dropped in price right after my order {order}! Refund the difference?",
              "price went down on {p}, price protection?",
              "Do you offer price adjustments? The {p} is ¥{new_price} today, I paid ¥{price}."],
       "zh": ["{d7}天前¥{price}买的{p}，现在降到¥{new_price}了，能退差价吗？",
              "订单{order}刚下单{p}就降价了！能补差价吗？",
              "{p}降价了 有价保吗",
              "你们有价格保护吗？{p}今天¥{new_price}，我买的时候¥{price}。"]},
      {"en": ["Yes! If the price drops within {pad} days of purchase, we refund the difference once per item. Here that's ¥{pdiff} to your original payment method; just send us the order number.",
              "Price drops within {pad} days of purchase are covered once per item, so we'll refund the ¥{pdiff} difference to your original payment method.",
              "Yes! If the price drops within {pad} days of purchase, we refund the difference once per item to your original payment method. Please send us the order number."],
       "zh": ["可以的！购买后{pad}天内降价，每件商品可退一次差价。您的差价是¥{pdiff}，提供订单号后原路退回。",
              "购买后{pad}天内降价可申请一次差价退款，这次差价¥{pdiff}会原路退回。",
              "可以的！购买后{pad}天内降价，每件商品可申请一次差价退款，原路退回，请提供订单号。"]},
      follow=[FU_CONTACT]),
    S("price_drop_late", "price_adjustment", ("apparel", "shoes", "home", "electronics"),
      {"en": ["I bought the {p} {dout7} days ago and it's cheaper now. Can I get a partial refund?",
              "price protection after {dout7} days?",
              "The {p} went on sale two weeks after I bought it. Refund the difference?"],
       "zh": ["{dout7}天前买的{p}现在便宜了，能退点差价吗？",
              "{dout7}天了还有价保吗",
              "{p}买了两周后降价了，能退差价吗？"]},
      {"en": ["I'm sorry, price adjustments only apply when the price drops within {pad} days of purchase, so this order isn't eligible."],
       "zh": ["很抱歉，价格保护仅适用于购买后{pad}天内降价的情况，这笔订单已不符合条件。"]}),
    S("price_flash_sale", "price_adjustment", ("apparel", "electronics"),
      {"en": ["The {p} was cheaper in yesterday's flash sale than what I paid {d7} days ago. Can I get the difference?",
              "Does price protection cover flash sale prices?"],
       "zh": ["{d7}天前买的{p}，昨天秒杀比我买的便宜，能退差价吗？",
              "价格保护包括限时秒杀价吗？"]},
      {"en": ["I'm sorry, flash sales and coupon discounts aren't eligible for price adjustment. It covers regular price drops within {pad} days of purchase."],
       "zh": ["很抱歉，限时秒杀和优惠券折扣不适用价格保护，价保仅适用于购买后{pad}天内的常规降价。"]},
      holdout=True),
    # --------------------------------------------------------------- invoices
    S("invoice_personal", "invoices", ("apparel", "shoes", "home", "electronics"),
      {"en": ["How do I get an invoice for order {order}?",
              "Can I have a receipt for the {p}?",
              "invoice pls {order}",
              "Where can I download the invoice for my {p}?"],
       "zh": ["订单{order}怎么开发票？",
              "{p}能开发票吗？",
              "开票 {order}",
              "{p}的发票在哪里下载？"]},
      {"en": ["After delivery, go to My Orders > Invoice and choose Personal. The electronic invoice is emailed within {invd} business days."],
       "zh": ["签收后在“我的订单 > 申请发票”中选择个人，电子发票将在{invd}个工作日内发送到您的邮箱。"]},
      follow=[FU_INVOICE_COMPANY]),
    S("invoice_company", "invoices", ("electronics", "home"),
      {"en": ["I need an invoice with my company name and tax ID.",
              "Can you issue a company invoice for {order}? Our tax number is 91310000MA1K{tax}.",
              "company invoice possible?",
              "Our finance team needs a VAT invoice in the company's name for the {p}."],
       "zh": ["需要开带公司抬头和税号的发票。",
              "订单{order}能开公司发票吗？税号91310000MA1K{tax}。",
              "能开单位发票吗",
              "公司财务需要{p}的单位抬头发票。"]},
      {"en": ["Yes! In My Orders > Invoice choose Company and enter the company name and tax ID. The electronic invoice is emailed within {invd} business days."],
       "zh": ["可以的！在“我的订单 > 申请发票”中选择单位，填写单位名称和税号，电子发票将在{invd}个工作日内发送到邮箱。"]}),
    S("invoice_fix", "invoices", ("electronics", "home", "apparel"),
      {"en": ["The company name on my invoice for {order} is wrong. Can you reissue it?",
              "I forgot to request an invoice last month. Is it too late?"],
       "zh": ["订单{order}发票上的公司名称错了，能重开吗？",
              "上个月忘了开发票，现在还能开吗？"]},
      {"en": ["Yes, invoices can be requested or corrected within {invr} days of delivery. Use My Orders > Invoice, and the new one is emailed within {invd} business days."],
       "zh": ["可以的，签收后{invr}天内可以申请开票或修改发票信息。请在“我的订单 > 申请发票”中操作，新发票{invd}个工作日内发送到邮箱。"]},
      holdout=True),
    # ---------------------------------------------------------------- contact
    S("contact_hours", "contact", ("apparel",),
      {"en": ["What are your customer service hours?",
              "Is there a phone number I can call?",
              "when is support open",
              "How can I reach a person at Maple & Pine?"],
       "zh": ["客服几点上班？",
              "有客服电话吗？",
              "人工客服什么时候在",
              "怎么联系枫松商城的人工客服？"]},
      {"en": ["Online chat is open every day {chat}. Our hotline {tel} is open Monday to Friday {tel_h}, and you can email {mail} any time."],
       "zh": ["在线客服每天{chat}在线；客服热线{tel}，周一至周五{tel_h}；也可随时发邮件至{mail}。"]}),
    S("contact_human", "contact", ("apparel",),
      {"en": ["I want to talk to a real person, not a bot.",
              "This isn't helping. Get me a human!",
              "human agent pls",
              "Can I speak to a manager about order {order}?"],
       "zh": ["我要找人工客服，不要机器人。",
              "说了半天没用，给我转人工！",
              "转人工",
              "订单{order}的问题我想找主管处理。"]},
      {"en": ["I'm sorry for the frustration! Type \"agent\" in chat to reach a colleague during chat hours ({chat} daily), or call {tel} Monday to Friday {tel_h}."],
       "zh": ["很抱歉给您带来困扰！在线客服时间（每天{chat}）内输入“人工”即可转接同事，或在周一至周五{tel_h}拨打{tel}。"]}),
    S("contact_email", "contact", ("apparel",),
      {"en": ["What's your email address for complaints?",
              "Can I send you the photos by email? What's the address?"],
       "zh": ["投诉邮箱是多少？",
              "照片可以发邮件吗？邮箱地址是什么？"]},
      {"en": ["You can email us at {mail}, and we reply within {mreply} business day. Please include your order number."],
       "zh": ["请发送邮件至{mail}，我们会在{mreply}个工作日内回复，记得附上订单号。"]},
      holdout=True),
]


# ---------------------------------------------------------------------------
# Slots, styles and the shop's voice
# ---------------------------------------------------------------------------
FIXED_SLOTS = {
    "rd": F["return_days"], "ed": F["electronics_return_days"], "dh": F["damage_report_hours"],
    "fee": F["return_label_fee"], "idays": F["inspect_days"], "refd": F["refund_days"],
    "sfee": F["standard_fee"], "cutoff": F["ship_cutoff"], "sdays": F["standard_days"],
    "free": F["free_shipping_over"], "xdays": F["express_days"], "xfee": F["express_fee"],
    "rdays": F["remote_days"], "stall": F["stalled_tracking_days"], "wy": F["warranty_years"],
    "ppy": F["points_per_yuan"], "ppo": F["points_per_yuan_off"], "pmax": F["points_max_pct"],
    "pexp": F["points_expiry_months"], "wel": F["welcome_coupon_off"], "pad": F["price_adjust_days"],
    "invd": F["invoice_days"], "invr": F["invoice_request_days"], "chat": F["chat_hours"],
    "tel": F["hotline"], "tel_h": F["hotline_hours"], "mail": F["email"], "mreply": F["email_reply_days"],
}


def order_number(r):
    month = r.randint(8, 11)
    day = r.randint(1, 22 if month == 11 else 28)
    return f"#MP2026{month:02d}{day:02d}-{r.randint(1, 9999):04d}"


def scenario_text(sc):
    parts = []
    for lang in ("en", "zh"):
        parts += sc["user"][lang] + sc["answer"][lang]
    return " ".join(parts)


def make_slots(r, lang, sc):
    text = scenario_text(sc)
    pool = [p for p in PRODUCTS if p["cat"] in sc["cats"]]
    if "{size}" in text or "{new_size}" in text:
        pool = [p for p in pool if len(p["sizes"]) >= 2]
    if "{new_colour}" in text:
        pool = [p for p in pool if len(p["colours"]) >= 2]
    p = r.choice(pool)
    other = r.choice([q for q in PRODUCTS if q["cat"] == p["cat"] and q is not p] or [p])
    s = dict(FIXED_SLOTS)
    s["p"] = p[f"name_{lang}"]
    s["other"] = other[f"name_{lang}"]
    s["mat"] = p[f"mat_{lang}"]
    s["care"] = p[f"care_{lang}"]
    s["price"] = p["price"]
    if len(p["sizes"]) >= 2:
        i = r.randrange(len(p["sizes"]) - 1)
        a, b = p["sizes"][i], p["sizes"][i + 1]
        s["size"], s["new_size"] = (a, b) if r.random() < 0.7 else (b, a)
    else:
        s["size"] = s["new_size"] = (p["sizes"] or ["one size"])[0]
    li = 0 if lang == "en" else 1
    cols = r.sample(p["colours"], 2) if len(p["colours"]) >= 2 else p["colours"] * 2
    s["colour"], s["new_colour"] = cols[0][li], cols[1][li]
    s["order"] = order_number(r)
    s["d30"] = r.randint(3, 25)
    s["d15"] = r.randint(2, 12)
    s["dlate"] = r.randint(35, 75)
    s["d7"] = r.randint(2, 6)
    s["dout7"] = r.randint(9, 25)
    s["m_in"] = r.randint(2, 11)
    s["m_out"] = r.randint(13, 24)
    s["ustall"] = r.randint(3, 6)
    s["amount"] = r.randint(35, 95)
    s["need"] = F["free_shipping_over"] - s["amount"]
    s["pdiff"] = round(p["price"] * r.choice([0.1, 0.15, 0.2, 0.25]))
    s["new_price"] = p["price"] - s["pdiff"]
    s["code"] = r.choice(COUPONS)
    s["points"] = r.randrange(300, 5001, 100)
    s["pval"] = s["points"] // F["points_per_yuan_off"]
    s["region"] = r.choice(REMOTE)[li]
    s["city"] = r.choice(CITIES)[li]
    s["abroad"] = r.choice(ABROAD)[li]
    s["h"] = r.randint(155, 188)
    s["w"] = r.randint(45, 90)
    s["tax"] = "".join(r.choice("0123456789ABCDEFGHJKLMNPQRTUWXY") for _ in range(4))
    return s


OPEN = {
    "en": ["Thank you for reaching out!", "Thanks for contacting Maple & Pine!", "Thank you for your question!",
           "Thanks for getting in touch!", "Thank you for your message!"],
    "zh": ["感谢您的咨询！", "感谢您联系枫松商城！", "谢谢您的提问！", "感谢您的留言！"],
}
OPEN_ANGRY = {
    "en": ["I'm sorry for the trouble, and thank you for your patience.",
           "I'm really sorry about this, and thanks for letting us know."],
    "zh": ["非常抱歉给您带来不便，感谢您的耐心！", "很抱歉让您着急了，感谢您的反馈！"],
}
OPEN_PLAIN = {  # before a body that already apologises
    "en": ["Thank you for your message.", "Thanks for asking.", "Thank you for checking with us."],
    "zh": ["感谢您的咨询。", "谢谢您的询问。", "感谢您的耐心。"],
}
OPEN_FOLLOW = {
    "en": ["Thank you!", "Thanks for the follow-up!", "Thanks for asking!"],
    "zh": ["好的，谢谢您！", "感谢您的追问！", "谢谢！"],
}
CLOSE = {
    "en": ["Is there anything else I can help you with?", "Let me know if there's anything else I can do for you.",
           "Anything else I can help with today?", "Happy to help with anything else!"],
    "zh": ["还有其他可以帮您的吗？", "如有其他问题，随时联系我们哦！", "还有什么需要帮忙的吗？", "还有其他问题也可以随时问我哦。"],
}
POLITE_PRE = {"en": ["Hi, ", "Hello! ", "Good morning. ", "Hi there, "], "zh": ["您好，", "你好，", "亲，", "在吗？"]}
POLITE_POST = {"en": [" Thanks!", " Thank you.", " Thanks in advance.", " Many thanks."], "zh": ["谢谢！", "麻烦了。", "谢谢啦", "辛苦了！"]}
ANGRY_PRE = {"en": ["This is really frustrating. ", "Not happy at all. ", "Seriously? ", "I've asked twice already! "],
             "zh": ["太让人生气了！", "你们怎么回事？", "我已经问了两次了！", "真的很无语，"]}
ZH_TYPOS = [("什么", "神马"), ("怎么", "咋"), ("已经", "以经"), ("吗？", "嘛"), ("的", "得"), ("在", "再"), ("可以", "可已")]
EN_TYPOS = [("please", "pls"), ("you", "u"), ("your", "ur"), ("received", "recieved"), ("refund", "refund"),
            ("because", "bc"), ("order", "oder"), ("delivery", "delivry"), ("exchange", "exchnage"),
            ("warranty", "warrenty"), ("shipping", "shiping"), ("what", "wat")]
STYLES = ["neutral", "neutral", "polite", "polite", "polite", "angry", "terse", "typo", "typo"]


def apply_style(r, lang, text, style):
    return re.sub(r"#mp(\d)", r"#MP\1", _apply_style(r, lang, text, style))


def _apply_style(r, lang, text, style):
    if style == "polite":
        pre = r.choice(POLITE_PRE[lang])
        if lang == "en":
            if pre.endswith(", ") and not re.match(r"I\b", text):
                text = text[0].lower() + text[1:]
            elif not pre.endswith(", "):
                text = text[0].upper() + text[1:]
            if text[-1] not in ".?!":
                asks = re.match(r"(?i)(what|when|where|why|how|can|could|is|are|do|does|will|any)\b", text) or "?" in text
                text += "?" if asks else "."
        elif text[-1] not in "。？！":
            text += "？" if re.search(r"吗|怎么|多久|什么|哪|几|能|可以|呢|不$", text) else "。"
        return pre + text + r.choice(POLITE_POST[lang])
    if style == "angry":
        return r.choice(ANGRY_PRE[lang]) + text.rstrip("?.!。？！") + ("!!" if lang == "en" else "！！")
    if style == "terse":
        if lang == "en":
            return text.rstrip("?.!").lower()
        return re.sub(r"[，。？！、]", " ", text).strip()
    if style == "typo":
        if lang == "en":
            t = text.lower().rstrip(".")
            hits = [(a, b) for a, b in EN_TYPOS if re.search(r"\b" + a + r"\b", t) and a != b]
            for a, b in hits[:2]:
                t = re.sub(r"\b" + a + r"\b", b, t, count=1)
            if not hits:  # swap two letters in the longest word
                words = t.split(" ")
                i = max(range(len(words)), key=lambda k: len(words[k]))
                w = words[i]
                if len(w) >= 5 and w.isalpha():
                    j = r.randrange(1, len(w) - 2)
                    words[i] = w[:j] + w[j + 1] + w[j] + w[j + 2:]
                t = " ".join(words)
            return t
        hits = [(a, b) for a, b in ZH_TYPOS if a in text]
        t = text
        for a, b in hits[:2]:
            t = t.replace(a, b, 1)
        return t.rstrip("。")
    return text


def count_cjk(text):
    return len(re.findall(r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]", text))


def check_length(lang, text):
    if lang == "en" and len(text.split()) >= 80:
        raise SystemExit(f"answer too long ({len(text.split())} words): {text}")
    if lang == "zh" and count_cjk(text) >= 120:
        raise SystemExit(f"answer too long ({count_cjk(text)} characters): {text}")


def voice(r, lang, body, opener_pool):
    apologises = re.match(r"(I'm sorry|I'm so sorry|很抱歉|非常抱歉|抱歉)", body)
    pool = OPEN_PLAIN if apologises and opener_pool is not OPEN_FOLLOW else opener_pool
    sep = " " if lang == "en" else ""
    text = r.choice(pool[lang]) + sep + body + sep + r.choice(CLOSE[lang])
    check_length(lang, text)
    return text


# An answer may quote a customer-specific slot only if the customer's message gave it.
DEPENDS = {"need": ("amount",), "pdiff": ("price", "new_price"), "pval": ("points",), "mat": ("p",), "care": ("p",)}


def placeholders(t):
    return re.findall(r"{(\w+)}", t)


def answers_for(sc, lang, tmpl):
    given = set(placeholders(tmpl))
    ok = []
    for a in sc["answer"][lang]:
        need = [d for x in placeholders(a) if x not in FIXED_SLOTS for d in DEPENDS.get(x, (x,))]
        if all(x in given for x in need):
            ok.append(a)
    if not ok:
        raise SystemExit(f"{sc['name']} ({lang}): no answer fits the phrasing {tmpl!r}")
    computed = [a for a in ok if any(x in DEPENDS and x not in ("mat", "care") for x in placeholders(a))]
    return computed or ok  # use the customer's numbers when they gave them


def dialogue(r, sc, lang, tmpl_idx, n_follow, style=None, tmpl=None):
    """One conversation: system, the first user turn from user[lang][tmpl_idx] (or tmpl), n follow-ups."""
    s = make_slots(r, lang, sc)
    style = style or r.choice(STYLES)
    tmpl = tmpl or sc["user"][lang][tmpl_idx]
    user = apply_style(r, lang, tmpl.format(**s), style)
    body = r.choice(answers_for(sc, lang, tmpl)).format(**s)
    msgs = [{"role": "system", "content": SYSTEM[lang]}, {"role": "user", "content": user},
            {"role": "assistant", "content": voice(r, lang, body, OPEN_ANGRY if style == "angry" else OPEN)}]
    for fu_user, fu_answer in r.sample(sc["follow"], min(n_follow, len(sc["follow"]))):
        u = r.choice(fu_user[lang]).format(**s)
        if r.random() < 0.3:
            u = apply_style(r, lang, u, r.choice(["polite", "terse", "typo"]))
        msgs.append({"role": "user", "content": u})
        msgs.append({"role": "assistant", "content": voice(r, lang, r.choice(fu_answer[lang]).format(**s), OPEN_FOLLOW)})
    return msgs


def n_follow_for(r, sc):
    if not sc["follow"] or r.random() >= 0.5:
        return 0
    return 1 if r.random() < 0.6 else 2


# ---------------------------------------------------------------------------
# More customer phrasings per scenario (train only): the words customers use
# vary far more than four phrasings show, and a small model answers a question
# worded in new words with the wrong policy.  Each phrasing here becomes one
# single-turn dialogue after train.jsonl's rows in train_plus.jsonl (its own
# random stream, so every other file stays as it was), the quickstart's
# training file: with the bf16 base's faster steps they raised its policy
# accuracy (docs/quickstart.md, "Choosing the recipe").  The held-out fact
# questions are checked against them too.  Holdout scenarios get none.
# ---------------------------------------------------------------------------
EXTRA_USER = {
    "return_basic": {
        "en": ["Changed my mind about the {p}. What is the time limit to return it?",
               "What's the return window on clothing?",
               "The {p} isn't what I expected. Can I still send it back for a refund?",
               "do you accept returns? the {p} is unworn"],
        "zh": ["{p}不想要了，退货期限是多久？", "衣服买回来不喜欢，多少天内可以退？",
               "{p}跟我想的不一样，还能退回去吗？", "没穿过的{p}能退吗，有时间限制吗"]},
    "return_electronics": {
        "en": ["How long is the return period for electronics like the {p}?",
               "I unboxed the {p} but never used it. Can I still return it?",
               "Is the return window shorter for gadgets?", "return a {p} bought last week, unused - possible?"],
        "zh": ["数码产品几天内可以退货？", "{p}拆了包装但没用，还能退吗？", "电子产品的退货时间比衣服短吗？",
               "上周买的{p}没用过，可以退吗"]},
    "return_final_sale": {
        "en": ["Are clearance items returnable?", "Can I send back something I bought on final sale, like the {p}?",
               "the {p} was a final sale item, any way to return it?", "Do sale items have the same return policy?"],
        "zh": ["清仓商品可以退货吗？", "最终特价买的{p}能退换吗？", "特价商品的退货政策一样吗？", "{p}是清仓款，还能退吗"]},
    "return_late": {
        "en": ["It's been over a month since delivery. Can I still return the {p}?",
               "Is the return window over after {dlate} days?", "return after a month possible?",
               "I missed the return deadline for the {p}. Any chance?"],
        "zh": ["签收超过一个月了，{p}还能退吗？", "过了一个月还能退货吗？", "{p}买了{dlate}天了，退货期过了吗？",
               "错过退货期限了，还有办法退吗"]},
    "exchange_size": {
        "en": ["Can I get the {p} in {new_size} instead?", "The {p} is too big. How do I swap it for a {new_size}?",
               "Is it free to exchange for size {new_size}?",
               "need a {new_size} instead of {size} for my {p}, how does exchange work"],
        "zh": ["{p}尺码不合适，能换成{new_size}码吗？", "{p}太大了，想换{new_size}码，怎么换？", "换成{new_size}码要收费吗？",
               "{p}要换成{new_size}码，流程是什么"]},
    "exchange_colour": {
        "en": ["Can I exchange the {p} for the {new_colour} one?",
               "I'd like to swap my {colour} {p} for {new_colour}. Until when can I do that?",
               "colour exchange to {new_colour} free?", "Is it possible to change to {new_colour} after delivery?"],
        "zh": ["{p}能换成{new_colour}吗？", "想把{colour}的{p}换成{new_colour}，多久内可以换？", "换成{new_colour}免费吗？",
               "收货后还能换成{new_colour}吗"]},
    "exchange_again": {
        "en": ["The replacement size doesn't fit either. Can I exchange a second time?",
               "Is there a fee for exchanging the {p} again?", "how much is a second exchange?",
               "Already swapped once, need another size. Cost?"],
        "zh": ["换过一次还是不合适，能再换一次吗？", "{p}第二次换货要收多少钱？", "再次换货有费用吗",
               "已经换过尺码了，还要再换，要付费吗？"]},
    "refund_when": {
        "en": ["How many days until my refund arrives?", "When will I see the money for my returned {p}?",
               "refund timeline after a return?", "You received my return. How long before the refund is processed?"],
        "zh": ["退款几天能到账？", "退回的{p}什么时候能收到退款？", "退货后多久退款",
               "你们已经收到我的退货了，退款要等多少天？"]},
    "refund_method": {
        "en": ["Can the refund go to a different bank account?", "My card expired. Where will my refund go?",
               "refund to another card?",
               "Could you send the money back to my debit card instead of the credit card I used?"],
        "zh": ["退款可以退到另一个账户吗？", "原来的银行卡过期了，退款会退到哪里？", "能退到别的卡吗",
               "我用信用卡付的，退款能打到借记卡上吗？"]},
    "refund_shipping_fee": {
        "en": ["Do I get the delivery charge back when I return something?", "Is the shipping cost refunded with my return?",
               "shipping fee refunded on returns?", "Will you refund the postage I paid for the {p}?"],
        "zh": ["退货时运费能退回来吗？", "退了{p}，当初的运费退不退？", "运费退吗", "退货会把邮费一起退给我吗？"]},
    "shipping_time": {
        "en": ["How many business days does standard delivery take?", "What's the usual delivery time?",
               "when will my order arrive with normal shipping?", "How soon do orders reach {city}?"],
        "zh": ["标准快递一般需要多长时间？", "一般多久能收到货？", "普通发货多久到", "寄到{city}一般要多久？"]},
    "shipping_free": {
        "en": ["Do you offer free shipping?", "What's the shipping fee for a small order?",
               "how much do I need to spend for free delivery", "My order is ¥{amount}. Will I pay for shipping?"],
        "zh": ["你们包邮吗？", "小额订单运费多少？", "满多少包邮", "我的订单¥{amount}，要付运费吗？"]},
    "shipping_express": {
        "en": ["How much is express shipping?", "Can I get my {p} faster? What does it cost?",
               "express delivery time and price?", "Is there a quicker shipping option to {city}?"],
        "zh": ["加急快递多少钱？", "{p}能快点送到吗？要加多少钱？", "加急几天到 多少钱", "寄到{city}有更快的配送吗？"]},
    "shipping_remote": {
        "en": ["How long does shipping to {region} take?", "Is express available for {region}?",
               "delivery time to {region}?", "Do you ship to {region}, and how many days?"],
        "zh": ["寄到{region}要几天？", "{region}能发加急吗？", "{region}这种偏远地区多久到", "你们发{region}吗？多少天能到？"]},
    "tracking_where": {
        "en": ["How do I track my order?", "Where can I find my tracking number?", "track package?",
               "Has my {p} shipped? How do I check?"],
        "zh": ["怎么查看物流？", "快递单号在哪里看？", "查快递", "{p}发货了吗？在哪里查？"]},
    "tracking_stalled": {
        "en": ["My tracking hasn't updated in days. What should I do?",
               "The parcel seems stuck in transit. Can you help?", "no tracking updates for {ustall} days",
               "How long before you investigate a delayed parcel?"],
        "zh": ["物流好几天没更新了，怎么办？", "包裹好像卡在路上了，能帮忙吗？", "物流{ustall}天没动",
               "快递一直不动，你们多久会去查？"]},
    "tracking_delivered_not_received": {
        "en": ["My order shows delivered but I don't have it.",
               "The courier marked my parcel as delivered, but it's not here.", "delivered but not received",
               "Tracking for {order} says it was left at my door. Nothing there. What now?"],
        "zh": ["显示签收了但我没收到货。", "快递说送到了，可是我没拿到。", "签收了没收到",
               "订单{order}显示放门口了，但什么都没有，怎么办？"]},
    "cancel_before_ship": {
        "en": ["How do I cancel an order that hasn't shipped?", "Can I cancel my order for the {p}? I changed my mind.",
               "cancel before shipping, refund how long?", "I want to cancel {order}. Is there a fee?"],
        "zh": ["还没发货的订单怎么取消？", "{p}不想要了，订单能取消吗？", "没发货能取消吗 退款多久",
               "想取消订单{order}，要收费吗？"]},
    "cancel_after_ship": {
        "en": ["My order already shipped. Can I still cancel it?",
               "It's on the way but I don't want it anymore. What can I do?", "cancel after dispatch?",
               "The {p} is in transit. How do I stop the order?"],
        "zh": ["订单已经发货了，还能取消吗？", "东西寄出了，我不想要了，怎么办？", "发货后还能取消吗",
               "{p}已经发出了，怎么取消？"]},
    "change_address": {
        "en": ["How do I change my shipping address?", "Can I update the address on order {order}?",
               "change delivery address?", "I moved. Can my {p} go to a new address?"],
        "zh": ["收货地址怎么修改？", "订单{order}的地址能改吗？", "改地址", "我搬家了，{p}能寄到新地址吗？"]},
    "damaged": {
        "en": ["The {p} arrived broken. What do I do?", "My order came damaged. How do I report it?",
               "damaged item, what now", "The {p} was cracked when I opened the box. Can I get a replacement?"],
        "zh": ["{p}到货就是坏的，怎么处理？", "收到的商品有破损，怎么反馈？", "东西坏了",
               "打开箱子{p}就裂了，能换新的吗？"]},
    "wrong_item": {
        "en": ["I received the wrong item. What should I do?", "You sent me a {other} instead of the {p}.",
               "wrong colour delivered", "The size I received isn't the one I ordered. How do I fix this?"],
        "zh": ["收到的东西不对，怎么办？", "我买的是{p}，你们发成了{other}。", "颜色发错了",
               "收到的尺码跟下单的不一样，怎么处理？"]},
    "missing_item": {
        "en": ["Something is missing from my order.", "My parcel arrived without the {p}.", "item missing from box",
               "I only got part of my order {order}. What now?"],
        "zh": ["订单里少了一件东西。", "箱子里没有{p}。", "少发了", "订单{order}只收到一部分，怎么办？"]},
    "warranty_claim": {
        "en": ["How long is the warranty on electronics?", "My {p} has a defect. Is it covered?", "warranty period?",
               "The {p} stopped charging after {m_in} months. Can you repair it?"],
        "zh": ["数码产品的保修期是多久？", "{p}有质量问题，能保修吗？", "保修期多长", "{p}用了{m_in}个月就充不进电了，能修吗？"]},
    "warranty_expired": {
        "en": ["My {p} is {m_out} months old and broke. Is it still under warranty?", "Out of warranty repair options?",
               "warranty expired, can you fix it?", "The {p} died after more than a year. Free repair?"],
        "zh": ["{p}买了{m_out}个月坏了，还在保修期吗？", "过保了还能修吗？", "过了保修期怎么办",
               "{p}用了一年多坏了，还能保修吗？"]},
    "warranty_accident": {
        "en": ["I dropped my {p}. Does the warranty cover it?", "Is water damage covered by warranty?",
               "accidental damage covered?", "The {p} got wet and stopped working. Can I claim warranty?"],
        "zh": ["{p}摔坏了，保修吗？", "进水坏了在保修范围内吗？", "意外损坏保修吗", "{p}淋了雨开不了机，能保修吗？"]},
    "presale_size": {
        "en": ["How does the {p} fit?", "Should I size up or down for the {p}?", "which size should I order?",
               "I'm usually a {size}. What size {p} do you recommend?"],
        "zh": ["{p}尺码准吗？", "{p}应该买什么尺码？", "尺码怎么挑", "我一般穿{size}，{p}推荐哪个码？"]},
    "presale_material": {
        "en": ["What fabric is the {p}?", "Tell me about the material of the {p}.", "{p} made of what?",
               "How should I care for the {p}, and what is it made of?"],
        "zh": ["{p}是什么面料？", "介绍一下{p}的材质。", "{p}啥材质", "{p}用什么材料做的？怎么保养？"]},
    "presale_stock": {
        "en": ["Is the {p} available in {size}?", "The {p} shows sold out. Can I get notified?", "{p} in stock?",
               "How do I know when the {p} in {colour} is back?"],
        "zh": ["{p}有{size}码吗？", "{p}显示售罄，能到货通知我吗？", "{p}有货吗", "{colour}的{p}什么时候有货，怎么知道？"]},
    "presale_restock": {
        "en": ["Do you know when the {p} will be restocked?", "Will the {p} come back in stock soon?",
               "restock date?", "Is there an exact date for the {p} restock?"],
        "zh": ["{p}还会再补货吗？", "{p}近期会补货吗？", "补货时间", "{p}具体哪天上架？"]},
    "coupon_combine": {
        "en": ["Can I use more than one coupon?", "Is it possible to combine {code} with another discount code?",
               "multiple coupons per order?", "Can coupons be stacked at checkout?"],
        "zh": ["可以同时用多张优惠券吗？", "{code}能和别的优惠码一起用吗？", "多张券能一起用吗", "结账时优惠券可以叠加吗？"]},
    "coupon_not_working": {
        "en": ["Why isn't my coupon code working?", "The code {code} says invalid. Why?", "coupon won't apply",
               "My discount isn't showing on the {p}. What's wrong?"],
        "zh": ["优惠券为什么用不了？", "{code}提示无效，为什么？", "券用不了", "买{p}优惠没生效，怎么回事？"]},
    "coupon_expired": {
        "en": ["Can you extend an expired coupon?", "My coupon ran out. Can I get a new one?",
               "expired coupon reissue?", "I forgot to use {code} before it expired. Can you help?"],
        "zh": ["过期的优惠券能延期吗？", "优惠券过期了，能重新发吗？", "券过期了怎么办", "{code}过期前忘了用，还能补吗？"]},
    "points": {
        "en": ["How many points do I need for ¥1 off?", "What are my {points} points worth?", "points worth?",
               "Is there a limit on how many points I can use per order?"],
        "zh": ["多少积分抵一块钱？", "{points}积分值多少钱？", "积分能抵多少", "每单最多能用多少积分？"]},
    "price_drop": {
        "en": ["The {p} got cheaper after I bought it. Can I get a refund for the difference?",
               "Do you have price protection?", "price dropped after purchase",
               "I paid ¥{price} for the {p} and it's now ¥{new_price}. What can you do?"],
        "zh": ["{p}买完就降价了，能退差价吗？", "你们有价保吗？", "买了就降价",
               "{p}我付了¥{price}，现在¥{new_price}，能补差价吗？"]},
    "price_drop_late": {
        "en": ["The price dropped {dout7} days after my order. Can I get the difference?",
               "Is price protection still valid after two weeks?", "price drop after {dout7} days refund?",
               "How long does price protection last?"],
        "zh": ["下单{dout7}天后降价了，还能退差价吗？", "两周后降价还保价吗？", "价保多长时间", "价格保护有效期是多久？"]},
    "invoice_personal": {
        "en": ["How can I get an invoice?", "I need a receipt for order {order}.", "e-invoice?",
               "Where do I request an invoice for the {p}?"],
        "zh": ["怎么开发票？", "订单{order}需要发票。", "电子发票", "{p}的发票在哪里申请？"]},
    "invoice_company": {
        "en": ["Can I get an invoice with my company's tax number?", "How do I request a business invoice?",
               "company invoice how?", "We need a company invoice for order {order}. How long will it take?"],
        "zh": ["能开带税号的公司发票吗？", "单位发票怎么申请？", "开公司票", "订单{order}要开单位发票，多久能收到？"]},
    "contact_hours": {
        "en": ["What's your phone number?", "When is your customer service available?", "hotline number?",
               "How can I contact you by phone?"],
        "zh": ["客服电话多少？", "你们客服什么时候在线？", "热线电话", "怎么打电话联系你们？"]},
    "contact_human": {
        "en": ["Can I talk to a human agent?", "I need to speak to a real person.", "agent please",
               "How do I reach a live person?"],
        "zh": ["能转人工吗？", "我要跟真人说话。", "人工客服", "怎么联系真人客服？"]},
}


def build_extra(seen):
    """One single-turn dialogue per EXTRA_USER phrasing, in scenario order."""
    r = random.Random(SEED + 2)
    out = []
    for sc in SCENARIOS:
        if sc["holdout"]:
            continue
        for lang in ("en", "zh"):
            for tmpl in EXTRA_USER[sc["name"]][lang]:
                for _ in range(50):
                    d = dialogue(r, sc, lang, 0, 0, tmpl=tmpl)
                    if d[1]["content"] not in seen:
                        break
                else:
                    raise SystemExit(f"{sc['name']} ({lang}): {tmpl!r} repeats a user turn")
                seen.add(d[1]["content"])
                out.append(d)
    return out


# ---------------------------------------------------------------------------
# Splits
# ---------------------------------------------------------------------------
N_TRAIN = 4  # per (scenario, language) that is not held out


def user_texts(msgs):
    return [m["content"] for m in msgs if m["role"] == "user"]


def build_splits(r):
    train, seen = [], set()
    for sc in SCENARIOS:
        if sc["holdout"]:
            continue
        for lang in ("en", "zh"):
            phr = len(sc["user"][lang]) - 1
            for k in range(N_TRAIN):
                for _ in range(50):
                    d = dialogue(r, sc, lang, k % phr, n_follow_for(r, sc))
                    if user_texts(d)[0] not in seen:
                        break
                seen.update(user_texts(d))
                train.append(d)
    val = []

    def fresh(sc, lang, idx, follow):
        for attempt in range(60):
            d = dialogue(r, sc, lang, idx, follow if attempt < 30 else 0)
            if not any(u in seen for u in user_texts(d)):
                return d
        raise SystemExit(f"cannot make a held-out dialogue for {sc['name']} ({lang})")

    for i, sc in enumerate(SCENARIOS):
        if sc["holdout"]:
            for lang in ("en", "zh"):
                val.append(fresh(sc, lang, r.randrange(len(sc["user"][lang])), n_follow_for(r, sc)))
        else:
            lang = ("en", "zh")[i % 2]
            val.append(fresh(sc, lang, len(sc["user"][lang]) - 1, n_follow_for(r, sc)))
    return train, val, seen


HELDOUT = [("en", "return_basic"), ("en", "shipping_free"), ("en", "damaged"),
           ("zh", "refund_when"), ("zh", "exchange_size"), ("zh", "price_drop")]


def build_heldout(r, seen):
    by_name = {sc["name"]: sc for sc in SCENARIOS}
    out = []
    for lang, name in HELDOUT:
        sc = by_name[name]
        for _ in range(60):
            d = dialogue(r, sc, lang, len(sc["user"][lang]) - 1, 0, style="neutral")
            if d[1]["content"] not in seen:
                break
        else:
            raise SystemExit(f"held-out question for {name} collides with train")
        out.append({"language": lang, "topic": sc["topic"], "system": d[0]["content"],
                    "question": d[1]["content"], "reference_answer": d[2]["content"]})
    return out


# ---------------------------------------------------------------------------
# Held-out fact questions (heldout_facts.json): hand-written customer questions
# worded unlike every user turn of the training files, each with the policy
# facts a correct answer must contain.  A fact is a list of accepted spellings;
# the matching rule (README.md, "heldout_facts.json") is: normalise the answer
# and each spelling (Unicode NFKC, lower case, runs of whitespace to one space);
# a fact is present when any spelling occurs in the answer; an answer is
# correct when every fact is present.  The spellings are built from FACTS.
# ---------------------------------------------------------------------------
EN_NUM = {1: "one", 2: "two", 3: "three", 5: "five", 7: "seven", 10: "ten", 12: "twelve", 15: "fifteen",
          30: "thirty", 48: "forty-eight"}
ZH_NUM = {1: "一", 2: "两", 3: "三", 5: "五", 7: "七", 10: "十", 12: "十二", 15: "十五", 30: "三十"}


def sp_days(n):
    w, z = EN_NUM[n], ZH_NUM[n]
    return [f"{n} days", f"{n}-day", f"{w} days", f"{w}-day", f"{n}天", f"{n} 天", f"{z}天", f"{n}日"]


def sp_business_days(n):
    w, z = EN_NUM[n], ZH_NUM[n]
    return [f"{n} business days", f"{n} working days", f"{w} business days", f"{w} working days",
            f"{n} business day", f"{n}个工作日", f"{n} 个工作日", f"{z}个工作日"]


def sp_range(v):
    a, b = (int(x) for x in v.split("-"))
    return [f"{a}-{b}", f"{a}–{b}", f"{a}—{b}", f"{a} - {b}", f"{a} to {b}", f"{a}~{b}", f"{a}到{b}",
            f"{a}至{b}", f"{EN_NUM[a]} to {EN_NUM[b]}", f"{ZH_NUM[a]}到{ZH_NUM[b]}"]


def sp_yuan(n):  # NFKC turns the full-width ￥ into ¥
    return [f"¥{n}", f"¥ {n}", f"{n} yuan", f"rmb {n}", f"rmb{n}", f"{n} rmb", f"cny {n}", f"{n}元", f"{n} 元",
            f"{n}块"]


def sp_hours(n):
    return [f"{n} hours", f"{n}-hour", f"{n} hrs", f"{EN_NUM[n]} hours", f"{n}小时", f"{n} 小时", f"{n}个小时"]


def sp_years(n):
    m = 12 * n
    return [f"{n}-year", f"{n} year", f"{EN_NUM[n]} year", f"{EN_NUM[n]}-year", f"{m} months", f"{m}-month",
            f"{n}年", f"{n} 年", f"{ZH_NUM[n]}年", f"{m}个月"]


FACT = {
    "return_window": sp_days(F["return_days"]),
    "electronics_window": sp_days(F["electronics_return_days"]),
    "exchange_free": ["is free", "are free", "for free", "free of charge", "no charge", "at no cost",
                      "free exchange", "免费", "不收费", "不收取费用"],
    "label_fee": sp_yuan(F["return_label_fee"]),
    "refund_days": sp_range(F["refund_days"]),
    "original_payment": ["original payment", "original method", "same payment method", "原路", "原支付方式",
                         "原付款方式"],
    "free_over": sp_yuan(F["free_shipping_over"]),
    "standard_days": sp_range(F["standard_days"]),
    "express_fee": sp_yuan(F["express_fee"]),
    "express_days": sp_range(F["express_days"]),
    "stalled_days": sp_business_days(F["stalled_tracking_days"]),
    "investigation": ["investigation", "investigate", "调查"],
    "replacement": ["replacement", "replace", "补发"],
    "refuse": ["refuse", "decline the delivery", "reject the delivery", "拒收"],
    "damage_hours": sp_hours(F["damage_report_hours"]),
    "warranty": sp_years(F["warranty_years"]),
    "defects_only": ["manufacturing defect", "manufacturing defects", "制造缺陷"],
    "not_covered": ["not covered", "aren't covered", "isn't covered", "doesn't cover", "does not cover",
                    "不在保修范围", "不保修", "不属于保修"],
    "paid_repair": ["paid repair", "付费维修", "付费修理"],
    "size_up": ["larger", "bigger", "size up", "大一码", "大一号", "选大"],
    "notify_me": ["notify me", "到货提醒"],
    "one_coupon": ["one coupon", "1 coupon", "only one", "single coupon", "一张"],
    "points_per_yuan": [f"{F['points_per_yuan_off']} points", f"{F['points_per_yuan_off']} pts",
                        f"{F['points_per_yuan_off']}积分", f"{F['points_per_yuan_off']} 积分",
                        f"{F['points_per_yuan_off']}分"],
    "points_cap": [f"{F['points_max_pct']}%", f"{F['points_max_pct']} %", f"{F['points_max_pct']} percent",
                   "百分之二十"],
    "price_days": sp_days(F["price_adjust_days"]),
    "invoice_days": sp_business_days(F["invoice_days"]),
    "hotline": [F["hotline"], F["hotline"].replace("-", " "), F["hotline"].replace("-", "")],
}

# (language, scenario whose answer is the reference, question, facts[, slots the
# reference answer quotes from the question])
FACT_QUESTIONS = [
    ("en", "return_basic", "Three weeks ago a sweater from you showed up and I've decided against keeping it. "
     "The labels are still attached. What's the deadline for posting it back?", ["return_window"]),
    ("en", "return_electronics", "I regret buying your noise-cancelling headphones, they're still sealed. "
     "How many days do gadgets get for sending back?", ["electronics_window"]),
    ("en", "exchange_size", "These chinos in 30 pinch at the waist. If I want a 32 instead, how long do I "
     "have to arrange that, and will the swap cost me?", ["return_window", "exchange_free"], {"new_size": "32"}),
    ("en", "exchange_again", "I traded my boots for a bigger pair once already and they still hurt. "
     "Is a second trade also on the house, or is there a charge?", ["label_fee"]),
    ("en", "refund_when", "My parcel with the returned jacket has landed at your depot. Roughly how many working "
     "days before the money is back on my card?", ["refund_days"]),
    ("en", "refund_method", "My bank replaced my card after it was stolen. Could the money from my return be "
     "paid into my husband's account instead?", ["original_payment"]),
    ("en", "shipping_free", "What's the minimum basket value before delivery stops costing extra?", ["free_over"]),
    ("en", "shipping_time", "Checking out this morning with the regular courier option to Suzhou. "
     "About how many working days should I expect?", ["standard_days"]),
    ("en", "shipping_express", "I'm in a rush. What does your quickest delivery option cost, and how soon "
     "would it turn up?", ["express_fee", "express_days"]),
    ("en", "tracking_stalled", "My package status has been frozen on one update for ages. After how long do "
     "you chase the courier?", ["stalled_days"]),
    ("en", "tracking_delivered_not_received", "The courier app insists my box was dropped off, yet nothing is "
     "here and the neighbours haven't seen it. What will you do about it?", ["investigation", "replacement"]),
    ("en", "cancel_before_ship", "I regret an order I made twenty minutes ago and it hasn't left your "
     "warehouse. If I call it off, how soon does my payment come back?", ["refund_days"]),
    ("en", "cancel_after_ship", "The box is already with the courier but I've changed my mind about wanting it. "
     "What are my options now?", ["refuse", "return_window"]),
    ("en", "damaged", "My stoneware plates turned up with two of them shattered. Is there a time limit for "
     "telling you about it?", ["damage_hours"]),
    ("en", "wrong_item", "You sent me a navy jacket when I paid for a black one. How long have I got to flag "
     "this?", ["damage_hours"]),
    ("en", "warranty_claim", "My fitness watch screen flickers nonstop after five months of normal use. How long "
     "does your cover last on gadgets like this?", ["warranty"]),
    ("en", "warranty_accident", "I knocked my headphones into the bath and now they're silent. Does your "
     "guarantee pay for fixing that?", ["defects_only", "not_covered"]),
    ("en", "presale_size", "According to your chart I'm right on the line between M and L for the linen shirt. "
     "Which way should I go?", ["size_up"]),
    ("en", "presale_stock", "The olive chinos show as unavailable in my size. Is there some way to be alerted "
     "once they return?", ["notify_me"]),
    ("en", "coupon_combine", "I'm holding a 20-off voucher plus a 50-off voucher. Will checkout accept both at "
     "once?", ["one_coupon"]),
    ("en", "points", "How many of my reward points add up to one yuan off, and is there a cap per purchase?",
     ["points_per_yuan", "points_cap"]),
    ("en", "price_drop", "Four days after I paid for a kettle, you cut its price. Do you give back the gap?",
     ["price_days"]),
    ("en", "invoice_company", "Our accounts department wants an electronic invoice with the business name on it. "
     "How quickly would it reach my inbox?", ["invoice_days"]),
    ("en", "contact_hours", "Is there a phone line I can ring to sort this out with somebody?", ["hotline"]),
    ("zh", "return_basic", "月底收到的长裤，标签都没剪，现在决定不留了，最晚收货后多少天内要寄回？", ["return_window"]),
    ("zh", "return_electronics", "充电宝拿回来一直没拆封，后悔了，数码类东西退回有几天时间？", ["electronics_window"]),
    ("zh", "exchange_colour", "收到的黑色羽绒服跟想象中差太多，想换成藏青色，要在多久之内申请？换的话收费吗？",
     ["return_window", "exchange_free"], {"new_colour": "藏青色"}),
    ("zh", "exchange_again", "跑鞋已经调过一回尺码了，还是不跟脚，再调一次需要我出钱吗？", ["label_fee"]),
    ("zh", "refund_when", "寄回的包裹仓库那边签收了，钱大概几个工作日能回到我卡上？", ["refund_days"]),
    ("zh", "refund_method", "付款用的那张卡已经挂失了，退款能打到我老公的账户上吗？", ["original_payment"]),
    ("zh", "shipping_free", "买满多少钱就不用另付快递费了？", ["free_over"]),
    ("zh", "shipping_time", "普通快递寄苏州一般需要几个工作日？", ["standard_days"]),
    ("zh", "shipping_express", "着急用，最快的配送方式收费多少、几天能送达？", ["express_fee", "express_days"]),
    ("zh", "tracking_stalled", "快递信息好几天都停在一个中转站，一般停多久你们才会介入？", ["stalled_days"]),
    ("zh", "tracking_delivered_not_received", "快递员说放门口了，可我回家啥也没看到，邻居也没代收，你们会怎么处理？",
     ["investigation", "replacement"]),
    ("zh", "cancel_before_ship", "刚拍下的单还没出库，我反悔了，撤单之后付的款几天能返还？", ["refund_days"]),
    ("zh", "cancel_after_ship", "东西已经交给快递在路上了，我突然用不上了，现在能怎么办？", ["refuse", "return_window"]),
    ("zh", "damaged", "拆开快递发现电热水壶外壳凹了一大块，这种情况要在多长时间内跟你们说？", ["damage_hours"]),
    ("zh", "missing_item", "订了三样东西，箱子里只有两样，少了的那件要在多长时间内反映？", ["damage_hours"]),
    ("zh", "warranty_claim", "运动手表戴了半年突然不能充电，你们家电子产品保修多长时间？", ["warranty"]),
    ("zh", "warranty_expired", "两年前入手的蓝牙音箱坏掉了，现在还能免费修吗？", ["warranty", "paid_repair"]),
    ("zh", "presale_size", "我平时穿M和L都可以，这件衬衫应该挑哪个码？", ["size_up"]),
    ("zh", "presale_restock", "想要的颜色卖光了，能告诉我哪天会再上架吗？", ["notify_me"]),
    ("zh", "coupon_combine", "手上有两张满减券，结账时可以一块儿用上吗？", ["one_coupon"]),
    ("zh", "points", "会员积分攒多少分能当一块钱花？一单最多能抵掉多少？", ["points_per_yuan", "points_cap"]),
    ("zh", "price_drop", "上周四买的毛衣今天打折了，已经过了5天，差价还能退给我吗？", ["price_days"]),
    ("zh", "invoice_company", "我们单位报销要开公司抬头，电子发票几天能发到邮箱？", ["invoice_days"]),
    ("zh", "contact_hours", "想直接打电话找人说，你们的号码是多少？", ["hotline"]),
]


def fact_normalise(text):
    return re.sub(r"\s+", " ", unicodedata.normalize("NFKC", text).lower())


def facts_present(answer, facts):
    a = fact_normalise(answer)
    return [any(fact_normalise(s) in a for s in spellings) for spellings in facts]


def word_ngrams(text, lang, n):
    t = fact_normalise(text)
    toks = re.findall(r"[a-z0-9]+(?:'[a-z]+)?", t) if lang == "en" else re.findall(r"[a-z0-9]|[\u4e00-\u9fff]", t)
    return {tuple(toks[i:i + n]) for i in range(len(toks) - n + 1)}


NGRAM = {"en": 5, "zh": 6}  # no fact question shares a run this long with a user turn of the other files


def build_fact_questions(users):
    r = random.Random(SEED + 1)  # its own stream: the other files do not move
    by_name = {sc["name"]: sc for sc in SCENARIOS}
    seen = {lang: set() for lang in NGRAM}
    for u in users:
        lang = "zh" if count_cjk(u) else "en"
        seen[lang] |= word_ngrams(u, lang, NGRAM[lang])
    out = []
    for i, (lang, name, question, keys, *slots) in enumerate(FACT_QUESTIONS):
        sc, slots = by_name[name], (slots or [{}])[0]
        shared = word_ngrams(question, lang, NGRAM[lang]) & seen[lang]
        if shared:
            raise SystemExit(f"fact question {question!r} shares {sorted(shared)[0]} with a dataset user turn")
        given = "".join("{" + k + "}" for k in slots)
        body = answers_for(sc, lang, given)[0].format(**FIXED_SLOTS, **slots)
        ref = voice(r, lang, body, OPEN)
        facts = [FACT[k] for k in keys]
        if not all(facts_present(ref, facts)):
            raise SystemExit(f"{name} ({lang}): the reference answer lacks a fact of {keys}: {ref}")
        n = sum(1 for q in FACT_QUESTIONS[:i] if q[0] == lang) + 1
        out.append({"id": f"{lang}-{n:02d}", "language": lang, "topic": sc["topic"], "scenario": name,
                    "system": SYSTEM[lang], "question": question, "required_facts": facts,
                    "fact_names": keys, "reference_answer": ref})
    return out


# ---------------------------------------------------------------------------
# Preference pairs (OpenAI DPO format).  The rejected answer is plausible but
# wrong in one way: a policy number changed, rude, far too long, or off-topic.
# ---------------------------------------------------------------------------
WRONG_NUMBERS = {
    "en": [(r"(?<![\d-])30 days", "60 days"), (r"(?<![\d-])15 days", "30 days"), (r"5-7 business days", "24 hours"),
           (r"3-5 business days", "1-2 business days"), (r"1-2 business days", "same-day"), (r"¥99\b", "¥199"),
           (r"¥15\b", "¥5"), (r"48 hours", "7 days"), (r"1-year", "3-year"), (r"(?<![\d-])7 days", "30 days"),
           (r"¥10\b", "¥25"), (r"7-10 business days", "3-5 business days"), (r"100 points", "10 points"),
           (r"9:00-21:00", "24/7"), (r"(?<![\d-])3 business days", "24 hours"), (r"90 days", "one year")],
    "zh": [(r"(?<![\d-])30天", "7天"), (r"(?<![\d-])15天", "30天"), (r"5-7个工作日", "24小时"),
           (r"3-5个工作日", "次日"), (r"1-2个工作日", "当日"), (r"¥99(?!\d)", "¥199"), (r"¥15(?!\d)", "¥5"),
           (r"48小时", "7天"), (r"(?<!\d)1年", "3年"), (r"(?<![\d-])7天", "30天"), (r"¥10(?!\d)", "¥25"),
           (r"7-10个工作日", "3-5个工作日"), (r"100积分", "10积分"), (r"9:00-21:00", "24小时"),
           (r"(?<![\d-])3个工作日", "24小时"), (r"90天", "一年")],
}
RUDE = {
    "en": ["Read the policy on our website, it's all explained there.", "That's not our problem. Take it up with the courier.",
           "We can't do anything about that.", "You should have checked before ordering.", "No. Anything else?"],
    "zh": ["自己去看官网的政策说明。", "这不归我们管，找快递去。", "这个没办法，我们处理不了。", "下单前怎么不看清楚？", "不行。还有事吗？"],
}
LONG_PAD = {
    "en": "To make sure you have the complete picture, here is our policy in full. ",
    "zh": "为了让您全面了解，下面把相关政策完整地说明一遍：",
}


def rejected(r, kind, lang, prompt_sc, chosen_body, s):
    sep = " " if lang == "en" else ""
    if kind == "wrong_number":
        for pat, rep in WRONG_NUMBERS[lang]:
            if re.search(pat, chosen_body):
                return r.choice(OPEN[lang]) + sep + re.sub(pat, rep, chosen_body, count=1) + sep + r.choice(CLOSE[lang])
        kind = "rude"
    if kind == "rude":
        return r.choice(RUDE[lang])
    if kind == "too_long":
        secs = policy_sections()
        picks = r.sample(secs, 3)
        text = " ".join(p[1] for p in picks) if lang == "en" else "".join(p[3] for p in picks)
        return r.choice(OPEN[lang]) + sep + LONG_PAD[lang] + text + sep + chosen_body + sep + r.choice(CLOSE[lang])
    # off_topic: a polite, correct answer to a different topic's question
    other = r.choice([sc for sc in SCENARIOS if sc["topic"] != prompt_sc["topic"] and not sc["holdout"]])
    body = other["answer"][lang][0]
    s2 = dict(s)
    return r.choice(OPEN[lang]) + sep + body.format(**s2) + sep + r.choice(CLOSE[lang])


KINDS = ["wrong_number", "rude", "too_long", "off_topic", "wrong_number"]


def preference_pair(r, sc, lang, tmpl_idx, kind):
    d = dialogue(r, sc, lang, tmpl_idx, 0)
    s = make_slots(random.Random(d[1]["content"]), lang, sc)  # slots only for an off-topic answer's blanks
    body = d[2]["content"]
    for o in OPEN[lang] + OPEN_ANGRY[lang] + OPEN_PLAIN[lang]:
        body = body.removeprefix(o).lstrip()
    for c in CLOSE[lang]:
        body = body.removesuffix(c).rstrip()
    return {"input": {"messages": d[:2]},
            "preferred_output": [d[2]],
            "non_preferred_output": [{"role": "assistant", "content": rejected(r, kind, lang, sc, body, s)}]}


def build_preferences(r, seen_val):
    train, val, prompts = [], [], set()
    k = 0
    for sc in SCENARIOS:
        if sc["holdout"]:
            continue
        for lang in ("en", "zh"):
            for _ in range(50):
                p = preference_pair(r, sc, lang, r.randrange(len(sc["user"][lang]) - 1), KINDS[k % len(KINDS)])
                u = p["input"]["messages"][1]["content"]
                if u not in prompts and u not in seen_val:
                    break
            prompts.add(u)
            train.append(p)
            k += 1
    for sc in SCENARIOS:
        if not sc["holdout"]:
            continue
        for lang in ("en", "zh"):
            for _ in range(50):
                p = preference_pair(r, sc, lang, r.randrange(len(sc["user"][lang])), KINDS[k % len(KINDS)])
                if p["input"]["messages"][1]["content"] not in prompts:
                    break
            val.append(p)
            k += 1
    return train, val


# ---------------------------------------------------------------------------
# Pretraining corpus
# ---------------------------------------------------------------------------
DESC = {
    "en": ["The {name} from Maple & Pine is made of {mat}. Care: {care}. It costs ¥{price}.",
           "Looking for everyday quality? Our {name} ({mat}) sells for ¥{price}; to keep it looking good, {care}.",
           "{name}: {mat}, ¥{price}. Available in {colours}.",
           "Customers often ask what the {name} is made of. The answer is {mat}, and the care instructions say: {care}.",
           "Maple & Pine's {name} comes in {colours} and is priced at ¥{price}. Material: {mat}.",
           "Product note: the {name} is {mat}. We recommend that you {care}. Price ¥{price}."],
    "zh": ["枫松商城的{name}采用{mat}，售价¥{price}。洗护方式：{care}。",
           "{name}：{mat}，¥{price}，可选颜色：{colours}。",
           "想要日常好物？{name}采用{mat}，售价¥{price}；保养建议：{care}。",
           "很多顾客问{name}是什么材质的。答案是{mat}，洗护说明为：{care}。",
           "{name}有{colours}可选，售价¥{price}，材质为{mat}。",
           "商品说明：{name}，{mat}。建议{care}。价格¥{price}。"],
}
SIZE_LINE = {"en": " Sizes: {sizes}. Fits true to size; if you are between sizes, choose the larger one.",
             "zh": "尺码：{sizes}。尺码标准，介于两个尺码之间建议选大一码。"}
CAT_LINE = {
    "electronics": {"en": " As an electronic item it can be returned within {ed} days of delivery if unused, and it has a {wy}-year warranty.",
                    "zh": "作为数码产品，未使用可在签收后{ed}天内退货，并享受{wy}年保修。"},
    "final": {"en": " This is a Final Sale item and cannot be returned or exchanged.",
              "zh": "此商品为最终特价商品，不支持退换。"},
    "default": {"en": " Unused items with tags can be returned within {rd} days of delivery.",
                "zh": "未使用且吊牌完好可在签收后{rd}天内退货。"},
}
PROSE = {
    "en": ["A customer wrote: \"{u}\" The Maple & Pine assistant replied: \"{a}\"",
           "Customer: {u}\nAssistant: {a}",
           "Question from a shopper: {u}\nAnswer from customer service: {a}",
           "When a shopper asked \"{u}\", customer service answered: \"{a}\""],
    "zh": ["顾客问：“{u}”枫松商城客服回答：“{a}”",
           "顾客：{u}\n客服：{a}",
           "一位买家咨询：{u}\n客服答复：{a}",
           "有顾客问“{u}”，客服这样回答：“{a}”"],
}
CORPUS_BYTES = 400_000


def build_corpus(r):
    parts = []
    secs = policy_sections()
    parts.append(f"{F['shop_en']} customer service policy\n\n" + "\n\n".join(f"{a}\n{b}" for a, b, _, _ in secs))
    parts.append(f"{F['shop_zh']}客服政策\n\n" + "\n\n".join(f"{c}\n{d}" for _, _, c, d in secs))
    for p in PRODUCTS:
        for lang in ("en", "zh"):
            li = 0 if lang == "en" else 1
            colours = (", " if lang == "en" else "、").join(c[li] for c in p["colours"])
            for t in DESC[lang]:
                line = t.format(name=p[f"name_{lang}"], mat=p[f"mat_{lang}"], care=p[f"care_{lang}"],
                                price=p["price"], colours=colours)
                if len(p["sizes"]) >= 2 and r.random() < 0.5:
                    line += SIZE_LINE[lang].format(sizes=(", " if lang == "en" else "、").join(p["sizes"]))
                cat = CAT_LINE.get(p["cat"], CAT_LINE["default"])
                line += cat[lang].format(**FIXED_SLOTS)
                parts.append(line)
    train_scs = [sc for sc in SCENARIOS if not sc["holdout"]]
    size = sum(len(x.encode()) for x in parts)
    while size < CORPUS_BYTES:
        sc = r.choice(train_scs)
        lang = r.choice(("en", "zh"))
        d = dialogue(r, sc, lang, r.randrange(len(sc["user"][lang]) - 1), n_follow_for(r, sc))
        turns = [(d[i]["content"], d[i + 1]["content"]) for i in range(1, len(d), 2)]
        t = r.choice(PROSE[lang])
        text = "\n".join(t.format(u=u, a=a) for u, a in turns)
        parts.append(text)
        size += len(text.encode()) + 2
    return "\n\n".join(parts) + "\n"


# ---------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------
def jsonl(rows):
    return "".join(json.dumps(x, ensure_ascii=False) + "\n" for x in rows)


def main(argv):
    plus = None
    if "--train-plus" in argv:  # train_plus.jsonl's rows to this file too
        i = argv.index("--train-plus")
        plus = Path(argv[i + 1])
        argv = argv[:i] + argv[i + 2:]
    out = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parent
    out.mkdir(parents=True, exist_ok=True)
    r = random.Random(SEED)
    train, val, seen = build_splits(r)
    heldout = build_heldout(r, seen)
    val_users = {u for d in val for u in user_texts(d)} | {h["question"] for h in heldout}
    pref, pref_val = build_preferences(r, val_users)
    corpus = build_corpus(r)
    extra = build_extra(set(seen) | val_users)
    fact_qs = build_fact_questions([u for d in train + val + extra for u in user_texts(d)] +
                                   [p["input"]["messages"][1]["content"] for p in pref + pref_val])
    files = {
        "policy.md": render_policy(),
        "train.jsonl": jsonl({"messages": d} for d in train),
        "validation.jsonl": jsonl({"messages": d} for d in val),
        "preference.jsonl": jsonl(pref),
        "preference_validation.jsonl": jsonl(pref_val),
        "heldout_questions.json": json.dumps(heldout, ensure_ascii=False, indent=2) + "\n",
        "corpus.txt": corpus,
        "heldout_facts.json": json.dumps(fact_qs, ensure_ascii=False, indent=2) + "\n",
        "train_plus.jsonl": jsonl({"messages": d} for d in train + extra),
    }
    for name, text in files.items():
        (out / name).write_bytes(text.encode("utf-8"))
    if plus:
        plus.write_bytes(jsonl({"messages": d} for d in train + extra).encode("utf-8"))
        print(f"{plus}: {len(train) + len(extra)} dialogues (train.jsonl + {len(extra)} more phrasings)")
    for name, rows in (("train", train), ("validation", val)):
        zh = sum(1 for d in rows if count_cjk(d[1]["content"]))
        multi = sum(1 for d in rows if len(d) > 3)
        print(f"{name}: {len(rows)} dialogues ({len(rows) - zh} en, {zh} zh, {multi} multi-turn)")
    print(f"preference: {len(pref)} pairs, preference_validation: {len(pref_val)} pairs")
    print(f"corpus.txt: {len(corpus.encode())} bytes")


if __name__ == "__main__":
    main(sys.argv)
