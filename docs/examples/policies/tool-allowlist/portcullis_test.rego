package portcullis_test

import data.portcullis

call(type, groups) := {
	"identity": {"type": type, "subject": "s", "groups": groups},
	"request": {"api": "chat", "model": "gpt-4o-mini", "tools": ["run_shell"]},
}

test_engineers_may_offer_any_tool if {
	d := portcullis.decision with input as call("apikey", ["engineering", "support"])
	d == {"allow": true, "tools": {"allowed": "*"}}
}

test_support_gets_its_tools_stripped_to_the_list if {
	d := portcullis.decision with input as call("apikey", ["support"])
	d.tools == {"allowed": ["lookup_ticket", "search_docs"], "on_violation": "strip"}
}

test_groups_add_up if {
	d := portcullis.decision with input as call("user", ["support", "finance"])
	d.tools.allowed == ["get_invoice", "lookup_ticket", "search_docs"]
}

test_other_groups_may_offer_no_tool if {
	d := portcullis.decision with input as call("apikey", ["marketing"])
	d.allow
	d.tools == {"allowed": [], "on_violation": "strip"}
}

test_services_are_refused_not_stripped if {
	d := portcullis.decision with input as call("service", ["support"])
	d.tools.on_violation == "deny"
}

test_no_group_is_denied if {
	not portcullis.decision.allow with input as call("apikey", [])
	not portcullis.decision.allow with input as {"request": {"api": "chat", "model": "demo"}}
}
