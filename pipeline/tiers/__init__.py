"""Model tiers: a routing policy per stream (primary, cascade, shadow, canary) and what runs it.

policy.py     routing.json under the model directory: load, validate, hot reload by mtime
cascade.py    TierRouter: which model scores which row of a batch (cascade: small on all rows,
              the band's rows escalated to the large model in one more call)
calibrate.py  the cascade band from held-out data for a target decision agreement
shadow.py     shadow versions score delivered batches on their own thread -> <stream>.shadow
costs.py      cost units per row of a version (manifest `cost`, or <model>/costs.json)
"""
