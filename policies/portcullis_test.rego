package portcullis_test

import data.portcullis

# A weekday, 10:00 UTC (Wednesday 2026-11-25).
weekday_morning := 1795600800

# A Sunday, 10:00 UTC (2026-11-29).
sunday_morning := 1795946400

call(type, groups, model) := {
	"identity": {"type": type, "subject": "alice", "groups": groups},
	"request": {"api": "chat", "model": model, "client_ip": "127.0.0.1"},
	"time": {"unix": weekday_morning},
}

person(groups, model) := call("apikey", groups, model)

# --- Models by group -----------------------------------------------------------

test_demo_group_may_use_demo if {
	portcullis.decision.allow with input as person(["demo"], "demo")
}

test_demo_group_may_use_demo_variants if {
	portcullis.decision.allow with input as person(["demo"], "demo-error-429")
}

test_demo_group_may_not_use_gpt if {
	d := portcullis.decision with input as person(["demo"], "gpt-4o-mini")
	not d.allow
	d.reasons == [`model "gpt-4o-mini" is not allowed for groups ["demo"]`]
}

test_engineering_may_use_anything if {
	portcullis.decision.allow with input as person(["engineering"], "gpt-4.1")
}

test_groups_add_up if {
	portcullis.decision.allow with input as person(["demo", "analysts"], "gpt-4o-mini")
}

test_no_groups_is_denied if {
	not portcullis.decision.allow with input as person([], "demo")
}

test_no_identity_is_denied if {
	not portcullis.decision.allow with input as {"request": {"api": "chat", "model": "demo"}}
}

test_models_lists_what_the_caller_may_use if {
	visible := portcullis.models with input as object.union(person(["analysts"], ""), {"models": ["demo", "gpt-4.1", "gpt-4o-mini"]})
	visible == {"demo", "gpt-4o-mini"}
}

# --- Credentials narrowed to some models ------------------------------------------

scoped(models, model) := object.union(person(["engineering"], model), {"identity": {"claims": {"models": models}}})

test_scoped_credential_may_use_its_models if {
	portcullis.decision.allow with input as scoped(["gpt-4o-mini"], "gpt-4o-mini")
}

test_scoped_credential_may_not_use_others if {
	d := portcullis.decision with input as scoped(["gpt-4o-mini"], "gpt-4.1")
	not d.allow
	d.reasons == [`this credential is limited to the models ["gpt-4o-mini"]`]
}

test_scoped_credential_sees_only_its_models if {
	visible := portcullis.models with input as object.union(scoped(["gpt-4o-mini"], ""), {"models": ["demo", "gpt-4.1", "gpt-4o-mini"]})
	visible == {"gpt-4o-mini"}
}

test_models_hides_what_the_network_or_hour_forbids if {
	outside := object.union(person(["engineering"], ""), {"models": ["o3-pro", "gpt-4.1"], "request": {"client_ip": "203.0.113.9"}})
	visible := portcullis.models with input as outside
	visible == {"gpt-4.1"}
	sunday := object.union(person(["contractors"], ""), {"models": ["gpt-4o-mini"], "time": {"unix": sunday_morning}})
	count(portcullis.models) == 0 with input as sunday
}

# --- Budgets and rate limits ---------------------------------------------------

test_budgets_per_group_and_per_user if {
	d := portcullis.decision with input as person(["demo", "analysts"], "demo")
	d.budgets == [
		{"key": "group:demo", "window": "day", "tokens": 200000},
		{"key": "group:analysts", "window": "day", "tokens": 1000000},
		{"key": "user:alice", "window": "month", "usd": 50},
	]
}

test_rate_limits_take_the_most_generous_group if {
	d := portcullis.decision with input as person(["demo", "analysts"], "demo")
	d.rate_limits == {"requests_per_minute": 120, "tokens_per_minute": 100000}
}

test_rate_limits_default_without_group_limits if {
	d := portcullis.decision with input as person(["engineering"], "demo")
		with data.tables as json.remove(data.tables, ["groups/engineering/requests_per_minute", "groups/engineering/tokens_per_minute"])
	d.rate_limits == {"requests_per_minute": 10, "tokens_per_minute": 5000}
}

# --- Tools ---------------------------------------------------------------------

test_people_have_other_tools_stripped if {
	d := portcullis.decision with input as person(["engineering"], "gpt-4.1")
	d.tools == {"allowed": ["get_weather", "search_docs", "lookup_ticket"], "on_violation": "strip"}
}

test_services_have_other_tools_refused if {
	d := portcullis.decision with input as call("service", ["engineering"], "gpt-4o-mini")
	d.tools.on_violation == "deny"
}

# --- Service accounts ----------------------------------------------------------

test_services_get_the_stricter_model_list if {
	portcullis.decision.allow with input as call("service", [], "gpt-4o-mini")
	d := portcullis.decision with input as call("service", ["engineering"], "gpt-4.1")
	not d.allow
	d.reasons == [`service accounts may only use ["gpt-4o-mini", "demo"], not "gpt-4.1"`]
}

test_services_get_an_output_cap if {
	d := portcullis.decision with input as call("service", [], "demo")
	d.max_tokens == 2048
	p := portcullis.decision with input as person(["demo"], "demo")
	p.max_tokens == 0
}

# --- Network and time conditions -------------------------------------------------

test_sensitive_models_only_from_trusted_networks if {
	portcullis.decision.allow with input as person(["engineering"], "o3-pro")
	outside := object.union(person(["engineering"], "o3-pro"), {"request": {"client_ip": "203.0.113.9"}})
	d := portcullis.decision with input as outside
	not d.allow
	d.reasons == [`model "o3-pro" may only be called from the company network, not from "203.0.113.9"`]
}

test_contractors_on_weekdays if {
	portcullis.decision.allow with input as person(["contractors"], "gpt-4o-mini")
}

test_contractors_not_on_sundays if {
	sunday := object.union(person(["contractors"], "gpt-4o-mini"), {"time": {"unix": sunday_morning}})
	d := portcullis.decision with input as sunday
	not d.allow
	d.reasons == ["group contractors may only call on weekdays between 7:00 and 19:00 UTC"]
}

test_reasons_add_up if {
	outside := object.union(person(["contractors"], "o3-pro"), {"request": {"client_ip": "203.0.113.9"}, "time": {"unix": sunday_morning}})
	d := portcullis.decision with input as outside
	count(d.reasons) == 3
}
