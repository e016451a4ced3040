"""``crm.servicedesk.v1.SurveyService``: satisfaction surveys."""

from __future__ import annotations

from typing import Any

from crm.servicedesk.v1 import servicedesk_pb2 as pb
from crm.servicedesk.v1 import servicedesk_pb2_grpc
from crm_platform.context import current_call
from crm_servicedesk import contract
from crm_servicedesk.api import convert
from crm_servicedesk.desk import ServiceDesk
from crm_servicedesk.storage import SURVEYS

Context = Any


class SurveyService(servicedesk_pb2_grpc.SurveyServiceServicer):
    """The survey handlers."""

    def __init__(self, desk: ServiceDesk) -> None:
        self.desk = desk

    async def SendSurvey(
        self, request: pb.SendSurveyRequest, context: Context
    ) -> pb.SendSurveyResponse:
        """A survey about a ticket, now."""
        survey = await self.desk.send_survey(request.ticket_id)
        return pb.SendSurveyResponse(survey=contract.survey_to_proto(survey, self.desk.now()))

    async def AnswerSurvey(
        self, request: pb.AnswerSurveyRequest, context: Context
    ) -> pb.AnswerSurveyResponse:
        """The customer's answer (once)."""
        survey = await self.desk.answer_survey(
            request.survey_id, convert.answer_from_proto(request.answer)
        )
        return pb.AnswerSurveyResponse(survey=contract.survey_to_proto(survey, self.desk.now()))

    async def GetSurvey(
        self, request: pb.GetSurveyRequest, context: Context
    ) -> pb.GetSurveyResponse:
        """One survey."""
        survey = await self.desk.get_survey(request.id)
        return pb.GetSurveyResponse(survey=contract.survey_to_proto(survey, self.desk.now()))

    async def ListSurveys(
        self, request: pb.ListSurveysRequest, context: Context
    ) -> pb.ListSurveysResponse:
        """Surveys newest first, by ticket or contact."""
        query: dict[str, Any] = {"tenant_id": current_call().tenant_id}
        if request.ticket_id:
            query["ticket_id"] = request.ticket_id
        if request.contact_id:
            query["contact_id"] = request.contact_id
        cursor = self.desk.store.surveys.find(query).sort("sent_at", -1).limit(500)
        now = self.desk.now()
        surveys = [SURVEYS.from_document(doc) async for doc in cursor]
        return pb.ListSurveysResponse(surveys=[contract.survey_to_proto(s, now) for s in surveys])
