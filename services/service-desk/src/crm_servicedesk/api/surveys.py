"""``crm.servicedesk.v1.SurveyService``: satisfaction surveys."""

from __future__ import annotations

from typing import Any

from crm.servicedesk.v1 import servicedesk_pb2 as pb
from crm.servicedesk.v1 import servicedesk_pb2_grpc
from crm_servicedesk import contract
from crm_servicedesk.api import convert
from crm_servicedesk.use_cases.surveys import Surveys

Context = Any


class SurveyService(servicedesk_pb2_grpc.SurveyServiceServicer):
    """The survey handlers."""

    def __init__(self, surveys: Surveys) -> None:
        self.surveys = surveys

    async def SendSurvey(
        self, request: pb.SendSurveyRequest, context: Context
    ) -> pb.SendSurveyResponse:
        """A survey about a ticket, now."""
        survey = await self.surveys.send_survey(request.ticket_id)
        return pb.SendSurveyResponse(survey=contract.survey_to_proto(survey, self.surveys.now()))

    async def AnswerSurvey(
        self, request: pb.AnswerSurveyRequest, context: Context
    ) -> pb.AnswerSurveyResponse:
        """The customer's answer (once)."""
        survey = await self.surveys.answer_survey(
            request.survey_id, convert.answer_from_proto(request.answer)
        )
        return pb.AnswerSurveyResponse(survey=contract.survey_to_proto(survey, self.surveys.now()))

    async def GetSurvey(
        self, request: pb.GetSurveyRequest, context: Context
    ) -> pb.GetSurveyResponse:
        """One survey."""
        survey = await self.surveys.get_survey(request.id)
        return pb.GetSurveyResponse(survey=contract.survey_to_proto(survey, self.surveys.now()))

    async def ListSurveys(
        self, request: pb.ListSurveysRequest, context: Context
    ) -> pb.ListSurveysResponse:
        """Surveys newest first, by ticket or contact."""
        surveys = await self.surveys.list_surveys(request.ticket_id, request.contact_id)
        now = self.surveys.now()
        return pb.ListSurveysResponse(surveys=[contract.survey_to_proto(s, now) for s in surveys])
