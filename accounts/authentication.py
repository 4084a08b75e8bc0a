"""Who is calling: the user row of every authenticated request, read with one precompiled query.

Every REST request with a JWT reads its user's row once (simplejwt's `JWTAuthentication.get_user`).
Through the ORM that read cost ~0.55 ms of CPU per request, spent building the same
`SELECT … WHERE id = %s` again each time (more than the rest of the balance endpoint's own work;
docs/performance.md "REST as deployed").
`user_by_pk` compiles that statement once per database connection vendor with the ORM itself, then
runs it through Django's connection (query logging, execute wrappers and CONN_HEALTH_CHECKS apply
as usual), applies the backend's converters and builds the instance with `Model.from_db`, as the
ORM does: the same row, the same fields, the same checks, every request. Nothing is cached but the
SQL text, so a deactivation, a password change or a tier change applies to the very next request.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db import DEFAULT_DB_ALIAS, connections
from django.utils.translation import gettext_lazy as _
from drf_spectacular.contrib.rest_framework_simplejwt import SimpleJWTScheme
from rest_framework_simplejwt.authentication import JWTAuthentication as SimpleJWTAuthentication
from rest_framework_simplejwt.exceptions import AuthenticationFailed, InvalidToken
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.utils import get_md5_hash_password

# (alias, vendor) -> (sql, attnames, converters): compiled on first use per database.
_compiled: dict[tuple[str, str], tuple[str, list[str], list]] = {}


def _compile(connection) -> tuple[str, list[str], list]:
    model = get_user_model()
    query = model._default_manager.filter(pk=0).query
    compiler = query.get_compiler(connection=connection)
    sql, params = compiler.as_sql()
    if list(params) != [0]:  # pragma: no cover - a guard against a changed ORM
        raise RuntimeError(f"unexpected parameters {params!r} for the user lookup")
    columns = [col for col, _alias, _ in compiler.select]
    attnames = [col.target.attname for col in columns]
    converters = list(compiler.get_converters(columns).items())
    return sql, attnames, converters


def user_by_pk(pk, using: str = DEFAULT_DB_ALIAS):
    """The user with this primary key, read fresh from the database (one query), or None."""
    model = get_user_model()
    try:
        pk = model._meta.pk.get_prep_value(pk)
    except (TypeError, ValueError):
        return None
    connection = connections[using]
    key = (using, connection.vendor)
    compiled = _compiled.get(key)
    if compiled is None:
        compiled = _compiled[key] = _compile(connection)
    sql, attnames, converters = compiled
    with connection.cursor() as cursor:
        cursor.execute(sql, [pk])
        row = cursor.fetchone()
    if row is None:
        return None
    if converters:
        row = list(row)
        for pos, (convs, expression) in converters:
            value = row[pos]
            for converter in convs:
                value = converter(value, expression, connection)
            row[pos] = value
    return model.from_db(using, attnames, row)


class JWTAuthentication(SimpleJWTAuthentication):
    """simplejwt's JWT authentication (the same claims, checks, errors and codes), reading the
    user with `user_by_pk`."""

    def get_user(self, validated_token):
        try:
            user_id = validated_token[api_settings.USER_ID_CLAIM]
        except KeyError as e:
            raise InvalidToken(_("Token contained no recognizable user identification")) from e
        if api_settings.USER_ID_FIELD != "id":  # pragma: no cover - not this project's setting
            return super().get_user(validated_token)
        user = user_by_pk(user_id)
        if user is None:
            raise AuthenticationFailed(_("User not found"), code="user_not_found")
        if api_settings.CHECK_USER_IS_ACTIVE and not user.is_active:
            raise AuthenticationFailed(_("User is inactive"), code="user_inactive")
        if api_settings.CHECK_REVOKE_TOKEN and validated_token.get(
            api_settings.REVOKE_TOKEN_CLAIM
        ) != get_md5_hash_password(user.password):
            raise AuthenticationFailed(_("The user's password has been changed."), code="password_changed")
        return user


class JWTAuthenticationScheme(SimpleJWTScheme):
    """The OpenAPI security scheme of simplejwt's class (`jwtAuth`, bearer JWT) for this subclass."""

    target_class = "accounts.authentication.JWTAuthentication"
