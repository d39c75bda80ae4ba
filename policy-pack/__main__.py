"""The identity lab's guardrails as a CrossGuard policy pack.

    pulumi preview --policy-pack policy-pack

Only builds the pack: PolicyPack(...) starts the analyzer server and blocks, so tests import
lab_guardrails instead of this file.
"""

from pulumi_policy import EnforcementLevel, PolicyPack

from lab_guardrails.policies import all_policies

PolicyPack(
    name="identity-lab-guardrails",
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=all_policies(),
)
