"""``mercato admin create``: bootstrap an admin through the registrations agent."""

from __future__ import annotations

import sys
import uuid

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from pydantic import ValidationError

from config import Settings
from gateway.http.validation import field_errors
from gateway.identity.passwords import hash_password
from gateway.identity.schemas import RegisterBody, normalise_email
from gateway.runtime.commands import CommandBus, new_deadline, started
from streams.errors import Conflict, MercatoError, Unavailable
from streams.events.users import RegistrationRequested

NO_WORKER = "no worker answered; is `mercato worker` running?"


async def create_admin(settings: Settings, *, email: str, password: str, name: str) -> int:
    """Register an admin account; prints the outcome and returns the exit code."""
    try:
        body = RegisterBody(email=email, password=password, name=name)
    except ValidationError as exc:
        for error in field_errors(exc):
            sys.stderr.write(f"mercato: --{error.field}: {error.message}\n")
        return 2
    instance = f"admin-cli-{uuid.uuid4().hex[:8]}"
    email_key = normalise_email(body.email)
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        client_id=f"{settings.app_id}-{instance}",
        acks="all",
        enable_idempotence=settings.kafka_idempotent,
    )
    try:
        await producer.start()
    except (KafkaError, OSError) as exc:
        sys.stderr.write(f"mercato: cannot reach the broker: {exc}\n")
        return 1
    try:
        bus = CommandBus(settings, producer, instance, source=f"cli/{instance}")
        async with started(bus):
            created = await bus.ask(
                RegistrationRequested(
                    user_id=uuid.uuid4().hex,
                    email=body.email,
                    email_normalized=email_key,
                    name=body.name,
                    roles=["admin"],
                    password_hash=await hash_password(body.password),
                    deadline=new_deadline(settings),
                    reply_to=bus.instance_id,
                ),
                correlation_id=None,
            )
    except Unavailable as exc:
        message = NO_WORKER if exc.code == "WORKER_UNAVAILABLE" else exc.detail
        sys.stderr.write(f"mercato: {message}\n")
        return 1
    except RuntimeError as exc:  # the replies topic is missing
        sys.stderr.write(f"mercato: {exc}\n")
        return 1
    except Conflict:  # EMAIL_TAKEN, the registrations agent's only refusal
        sys.stderr.write(f"mercato: an account with email {body.email} already exists\n")
        return 1
    except MercatoError as exc:
        sys.stderr.write(f"mercato: refused ({exc.code}): {exc.detail}\n")
        return 1
    finally:
        await producer.stop()
    sys.stdout.write(f"admin {created['email']} created (user id {created['userId']})\n")
    return 0
