"""The Faust app of a worker process: lifecycle, signal handling and timers, without Kafka.

The hot consume path is not Faust's: each stream's engine (pipeline/engine) owns a
confluent-kafka consumer on its own thread and runs as a service of this app. Faust's own
Kafka consumer and producer are switched off, so the app joins no consumer group and fetches
nothing (its per-event consume path cost 4-5x the CPU of a batch consumer, see bench/README.md).
"""

from __future__ import annotations

import ssl

import faust
from faust.types.auth import CredentialsT

from pipeline.config import Settings, read_secret


def make_app(settings: Settings, app_id: str) -> faust.App:
    settings.state_dir.mkdir(parents=True, exist_ok=True)  # faust creates only the last level
    app = faust.App(
        app_id,
        broker=f"kafka://{settings.kafka_bootstrap}",  # never connected: Kafka is off below
        # ... but should Faust's client ever connect, it uses the engines' security settings
        broker_credentials=broker_credentials(settings),
        store="memory://",
        datadir=str(settings.state_dir / "faust"),
        web_enabled=False,
        # faust would otherwise read its own --loglevel for the banner and redirect stdout
        worker_redirect_stdouts=False,
    )
    app.boot_strategy = app.BootStrategy(app, enable_kafka=False)
    return app


def broker_credentials(settings: Settings) -> CredentialsT | None:
    """Faust's (aiokafka's) form of the Kafka security settings; None for PLAINTEXT.

    Its SASLCredentials repr shows the user name only, so the password is not in Faust's logs.
    """
    protocol = settings.kafka_security_protocol
    context = None
    if protocol in ("SSL", "SASL_SSL"):
        # hostname checked against the certificate, as librdkafka does
        context = ssl.create_default_context(
            ssl.Purpose.SERVER_AUTH, cafile=settings.kafka_ssl_ca_location or None
        )
        if settings.kafka_ssl_certificate_location:
            key_password = (
                read_secret(
                    settings.kafka_ssl_key_password_file, "INFERSTREAM_KAFKA_SSL_KEY_PASSWORD_FILE"
                )
                if settings.kafka_ssl_key_password_file
                else None
            )
            context.load_cert_chain(
                settings.kafka_ssl_certificate_location,
                settings.kafka_ssl_key_location,
                key_password,
            )
    if protocol.startswith("SASL_"):
        from pipeline.kafka.client_config import kafka_sasl_password

        return faust.SASLCredentials(
            username=settings.kafka_sasl_username,
            password=kafka_sasl_password(settings),
            ssl_context=context,
            mechanism=settings.kafka_sasl_mechanism,
        )
    if context is not None:
        return faust.SSLCredentials(context)
    return None
