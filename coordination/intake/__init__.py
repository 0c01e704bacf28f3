"""Work arriving from outside: GitHub issue webhooks and a generic JSON intake.

models   IntakeSource (configured in the admin) and IntakeDelivery (one per accepted request)
github   signature check and the parts of GitHub's payloads the intake reads
services what a delivery does, in one transaction with its event
api      the endpoint POST /api/intake/<slug>
admin    sources (edited by operators) and deliveries (read-only)
"""
