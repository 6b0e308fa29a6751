# Example: which function tools each group may offer a model.
#
# Engineers may offer any tool. Support and finance get their own lists
# (a caller in both gets both). Everyone else may call models, but every
# tool they offer is removed. Services are refused instead of stripped.
package portcullis

group_tools := {
	"support": ["lookup_ticket", "search_docs"],
	"finance": ["get_invoice", "search_docs"],
}

groups := object.get(input, ["identity", "groups"], [])

default decision := {"allow": false, "reasons": ["the caller has no group"]}

decision := {"allow": true, "tools": tools} if count(groups) > 0

# --- Tools ----------------------------------------------------------------------

any_tool if "engineering" in groups

tools := {"allowed": "*"} if any_tool

tools := {"allowed": allowed_tools, "on_violation": on_violation} if not any_tool

# The tools of all the caller's groups; [] when none of them has any.
allowed_tools := sort({t | some g in groups; some t in group_tools[g]})

# A person's client copes with a tool gone missing; an automated service
# would rather fail loudly than work without its tool.
default on_violation := "strip"

on_violation := "deny" if input.identity.type == "service"
