"""The analytics views: one entry each (name, one-line description, tables it needs, SQL).

Every figure is computed from the raw rows the connector loaded, with the definition GrowthOS
itself uses for the same figure (growthos_sim/world.py is our reading of it; the tests compare
each view with the API's own answer). Ratios are kept at full precision: the API rounds on
output (NPS to 1 decimal, averages to 3, rates to 4), and the tests round the view's value the
same way before comparing. Days and months are UTC calendar days, as the API's
`POST /analytics/query` buckets them, unless `create_models(timezone=...)` says otherwise.
See docs/sql-models.md for every column.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .render import Warehouse, count_if, ratio


@dataclass(frozen=True)
class Model:
    name: str
    description: str  # one line: stored as the view's comment
    requires: tuple[str, ...]  # tables that must exist in the dataset
    sql: Callable[[Warehouse], str]


# Columns of `contacts` that are not traits, and trait names that would collide with them.
_CONTACT_FIELDS = ("contact_id", "email", "external_id", "tags", "created_at", "updated_at")
_LEADING_TRAITS = ("name", "plan", "company", "country")


def _trait_columns(w: Warehouse) -> list[tuple[str, str]]:
    """(warehouse column, output name) of every top-level scalar trait loaded so far.

    Nested traits (`traits__address__city`) and dlt's variant columns (`traits__seats__v_text`,
    made when a trait's type changes between rows) are left out: one column per trait name."""
    names = sorted(c[len("traits__"):] for c in w.columns.get("contacts", ())
                   if c.startswith("traits__") and "__" not in c[len("traits__"):])
    ordered = [n for n in _LEADING_TRAITS if n in names] + \
        [n for n in names if n not in _LEADING_TRAITS]
    return [(f"traits__{n}", f"trait_{n}" if n in _CONTACT_FIELDS else n) for n in ordered]


def contacts_current(w: Warehouse) -> str:
    traits = "".join(f",\n  c.{w.quote(src)} AS {w.quote(out)}" for src, out in _trait_columns(w))
    if w.has("contacts__tags"):
        tags_join = (f"LEFT JOIN (SELECT _dlt_parent_id, array_agg(value ORDER BY _dlt_list_idx) "
                     f"AS tags FROM {w.table('contacts__tags')} GROUP BY _dlt_parent_id) t "
                     f"ON t._dlt_parent_id = c._dlt_id")
        tags = "COALESCE(t.tags, CAST(ARRAY[] AS VARCHAR[]))"
    else:
        tags_join, tags = "", "CAST(ARRAY[] AS VARCHAR[])"
    deleted = w.col("c", "contacts", "_deleted_at", "TIMESTAMP WITH TIME ZONE")
    return f"""SELECT
  c.id AS contact_id,
  {w.col("c", "contacts", "email", "VARCHAR")} AS email,
  {w.col("c", "contacts", "external_id", "VARCHAR")} AS external_id{traits},
  {tags} AS tags,
  c.created_at,
  c.updated_at
FROM {w.table("contacts")} c
{tags_join}
WHERE {deleted} IS NULL"""


def _response_aggregates(w: Warehouse, alias: str) -> str:
    """Counts, NPS parts and average score over the responses aliased `alias`.

    Categories are counted from the API's own `category` field, as /surveys/{id}/stats does,
    not re-derived from `score`: the docs' own example shows a passive with score 6."""
    cat = w.col(alias, "survey_responses", "category", "VARCHAR")
    score = w.col(alias, "survey_responses", "score", "BIGINT")
    return f"""COUNT({alias}.id) AS responses,
    {count_if(f"{cat} = 'promoter'")} AS promoters,
    {count_if(f"{cat} = 'passive'")} AS passives,
    {count_if(f"{cat} = 'detractor'")} AS detractors,
    CAST(SUM({score}) AS BIGINT) AS score_sum,
    COUNT({score}) AS scored,
    MIN({alias}.responded_at) AS first_response_at,
    MAX({alias}.responded_at) AS last_response_at"""


# NPS = 100 * (promoters - detractors) / all responses, for NPS surveys only (the API's
# nps_score is null for CSAT and custom surveys and for a survey nobody answered).
_NPS = ("CASE WHEN s.type = 'nps' AND a.responses > 0 THEN "
        "CAST(100 * (a.promoters - a.detractors) AS DOUBLE PRECISION) / a.responses END")
_AVERAGE = "CAST(a.score_sum AS DOUBLE PRECISION) / NULLIF(a.scored, 0)"


def survey_nps(w: Warehouse) -> str:
    return f"""SELECT
  s.id AS survey_id,
  s.name AS survey_name,
  s.type AS survey_type,
  s.status,
  COALESCE(a.responses, 0) AS responses,
  COALESCE(a.promoters, 0) AS promoters,
  COALESCE(a.passives, 0) AS passives,
  COALESCE(a.detractors, 0) AS detractors,
  {_NPS} AS nps,
  {_AVERAGE} AS average_score,
  a.first_response_at,
  a.last_response_at
FROM {w.table("surveys")} s
LEFT JOIN (
  SELECT r.survey_id,
    {_response_aggregates(w, "r")}
  FROM {w.table("survey_responses")} r
  GROUP BY r.survey_id
) a ON a.survey_id = s.id"""


def survey_nps_monthly(w: Warehouse) -> str:
    month = w.month("r.responded_at")
    return f"""SELECT
  a.survey_id,
  a.month,
  s.name AS survey_name,
  s.type AS survey_type,
  a.responses,
  a.promoters,
  a.passives,
  a.detractors,
  {_NPS} AS nps,
  {_AVERAGE} AS average_score
FROM (
  SELECT r.survey_id, {month} AS month,
    {_response_aggregates(w, "r")}
  FROM {w.table("survey_responses")} r
  GROUP BY r.survey_id, {month}
) a
JOIN {w.table("surveys")} s ON s.id = a.survey_id"""


def campaign_performance(w: Warehouse) -> str:
    def stat(name: str) -> str:
        return w.col("st", "campaign_stats", f"stats__{name}", "BIGINT")

    def api_rate(name: str, num: str, den: str) -> str:
        # The API's own rate (rounded to 4 decimals by the API); computed the API's way when
        # the column is absent (a zero denominator gives 0, as the API reports it).
        if w.has("campaign_stats", f"stats__{name}"):
            return f"st.{w.quote(f'stats__{name}')}"
        return f"COALESCE({ratio(stat(num), stat(den))}, 0)"

    return f"""SELECT
  c.id AS campaign_id,
  c.name AS campaign_name,
  c.type AS campaign_type,
  c.status,
  {w.col("c", "campaigns", "segment_id", "VARCHAR")} AS segment_id,
  {w.col("c", "campaigns", "scheduled_at", "TIMESTAMP WITH TIME ZONE")} AS scheduled_at,
  c.created_at,
  {stat("sent")} AS sent,
  {stat("delivered")} AS delivered,
  {stat("opened")} AS opened,
  {stat("clicked")} AS clicked,
  {stat("bounced")} AS bounced,
  {stat("unsubscribed")} AS unsubscribed,
  {ratio(stat("delivered"), stat("sent"))} AS delivery_rate,
  {api_rate("open_rate", "opened", "delivered")} AS open_rate,
  {api_rate("click_rate", "clicked", "delivered")} AS click_rate,
  {ratio(stat("clicked"), stat("opened"))} AS click_to_open_rate,
  {api_rate("bounce_rate", "bounced", "sent")} AS bounce_rate,
  {api_rate("unsubscribe_rate", "unsubscribed", "delivered")} AS unsubscribe_rate,
  {w.col("st", "campaign_stats", "updated_at", "TIMESTAMP WITH TIME ZONE")} AS stats_updated_at
FROM {w.table("campaigns")} c
LEFT JOIN {w.table("campaign_stats")} st ON st.campaign_id = c.id"""


def referral_funnel(w: Warehouse) -> str:
    clicks = w.col("l", "referral_links", "clicks", "BIGINT")
    reward = w.col("v", "referral_conversions", "reward_status", "VARCHAR")
    conv = w.table("referral_conversions")
    return f"""WITH link_totals AS (
  SELECT l.program_id, COUNT(*) AS links, COUNT(DISTINCT l.contact_id) AS referrers,
    CAST(COALESCE(SUM({clicks}), 0) AS BIGINT) AS clicks
  FROM {w.table("referral_links")} l
  GROUP BY l.program_id
), conversion_totals AS (
  SELECT v.program_id, COUNT(*) AS conversions,
    {count_if(f"{reward} = 'issued'")} AS rewards_issued,
    COUNT(DISTINCT v.referred_contact_id) AS referred_contacts
  FROM {conv} v
  GROUP BY v.program_id
), ranked AS (
  -- GET /referrals/leaderboard's order: every contact with a link, most conversions first,
  -- ties by contact id.
  SELECT l.program_id, l.contact_id,
    ROW_NUMBER() OVER (PARTITION BY l.program_id
                       ORDER BY COUNT(v.id) DESC, l.contact_id) AS referrer_rank
  FROM {w.table("referral_links")} l
  LEFT JOIN {conv} v ON v.link_code = l.code
  GROUP BY l.program_id, l.contact_id
), top_three AS (
  SELECT program_id, array_agg(contact_id ORDER BY referrer_rank) AS top_referrers
  FROM ranked WHERE referrer_rank <= 3
  GROUP BY program_id
)
SELECT
  p.id AS program_id,
  p.name AS program_name,
  p.status,
  p.reward_type,
  COALESCE(lt.links, 0) AS links,
  COALESCE(lt.referrers, 0) AS referrers,
  COALESCE(lt.clicks, 0) AS clicks,
  COALESCE(ct.conversions, 0) AS conversions,
  COALESCE(ct.rewards_issued, 0) AS rewards_issued,
  COALESCE(ct.referred_contacts, 0) AS referred_contacts,
  {ratio("COALESCE(ct.conversions, 0)", "lt.links")} AS conversion_rate,
  {ratio("COALESCE(ct.conversions, 0)", "lt.clicks")} AS click_conversion_rate,
  COALESCE(tt.top_referrers, CAST(ARRAY[] AS VARCHAR[])) AS top_referrers
FROM {w.table("referral_programs")} p
LEFT JOIN link_totals lt ON lt.program_id = p.id
LEFT JOIN conversion_totals ct ON ct.program_id = p.id
LEFT JOIN top_three tt ON tt.program_id = p.id"""


def daily_events(w: Warehouse) -> str:
    day = w.day(f'e.{w.quote("timestamp")}')
    contact = w.col("e", "events", "contact_id", "VARCHAR")
    return f"""SELECT
  {day} AS day,
  e.event,
  COUNT(*) AS events,
  COUNT(DISTINCT {contact}) AS unique_contacts
FROM {w.table("events")} e
GROUP BY {day}, e.event"""


def waitlist_funnel(w: Warehouse) -> str:
    status = w.col("en", "waitlist_entries", "status", "VARCHAR")
    refs = w.col("en", "waitlist_entries", "referral_count", "BIGINT")
    return f"""SELECT
  wl.id AS waitlist_id,
  wl.name AS waitlist_name,
  {w.col("wl", "waitlists", "slug", "VARCHAR")} AS slug,
  COALESCE(a.entries, 0) AS entries,
  COALESCE(a.approved, 0) AS approved,
  COALESCE(a.waiting, 0) AS waiting,
  {ratio("a.approved", "a.entries")} AS approval_rate,
  COALESCE(a.referrals, 0) AS referrals,
  COALESCE(a.referrers, 0) AS referrers,
  {ratio("a.referrers", "a.entries")} AS referral_driven_share,
  {ratio("a.referrals", "a.entries")} AS viral_coefficient,
  a.first_joined_at,
  a.last_joined_at
FROM {w.table("waitlists")} wl
LEFT JOIN (
  SELECT en.waitlist_id, COUNT(*) AS entries,
    {count_if(f"{status} = 'approved'")} AS approved,
    {count_if(f"{status} = 'waiting'")} AS waiting,
    CAST(COALESCE(SUM({refs}), 0) AS BIGINT) AS referrals,
    {count_if(f"{refs} > 0")} AS referrers,
    MIN(en.joined_at) AS first_joined_at,
    MAX(en.joined_at) AS last_joined_at
  FROM {w.table("waitlist_entries")} en
  GROUP BY en.waitlist_id
) a ON a.waitlist_id = wl.id"""


MODELS: tuple[Model, ...] = (
    Model("contacts_current", "Live GrowthOS contacts, one row each: email, external id, "
          "top-level traits, tags, created/updated", ("contacts",), contacts_current),
    Model("survey_nps", "Per survey: responses, promoters/passives/detractors, NPS and average "
          "score, as GET /surveys/{id}/stats computes them", ("surveys", "survey_responses"),
          survey_nps),
    Model("survey_nps_monthly", "Per survey and month of response: the survey_nps figures",
          ("surveys", "survey_responses"), survey_nps_monthly),
    Model("campaign_performance", "Per campaign: name/type/status, send counts and rates from "
          "GET /campaigns/{id}/stats", ("campaigns", "campaign_stats"), campaign_performance),
    Model("referral_funnel", "Per referral program: links, clicks, conversions, rewards, "
          "conversion rates and the top three referrers",
          ("referral_programs", "referral_links", "referral_conversions"), referral_funnel),
    Model("daily_events", "Per day and event name: events and distinct contacts, days as "
          "POST /analytics/query buckets them", ("events",), daily_events),
    Model("waitlist_funnel", "Per waitlist: entries, approved, waiting, approval rate and the "
          "share of entries driven by referrals", ("waitlists", "waitlist_entries"),
          waitlist_funnel),
)

BY_NAME = {m.name: m for m in MODELS}
# Every table a model reads (nested ones included): what create_models looks up.
TABLES = tuple(sorted({t for m in MODELS for t in m.requires} | {"contacts__tags"}))
