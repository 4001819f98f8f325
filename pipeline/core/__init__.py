"""The core contract: messages crossing the transport boundary, topic naming, stream plug-ins.

Nothing here imports Kafka, Faust, Redis or any one stream.
"""
