//! Functions `pets::…`: answers the gateway computes itself, from the pets upstream or from the request alone.

use petstore_types::schemas::{CheckupResult, CheckupResultAdvice, PetAge, Problem};
use petstore_types::{
    FunctionContext, GatewayError, GetPetAgeRequest, GetPetAgeResponse, RecordCheckupRequest, RecordCheckupResponse,
};

/// Dog years per year.
const DOG_YEARS: i64 = 7;

/// `GET /pets/{petId}/age`: asks the pets upstream for the pet (through the gateway's pooled client, with the
/// upstream's timeouts) and answers with its age.
pub async fn age(req: GetPetAgeRequest, ctx: &FunctionContext<'_>) -> Result<GetPetAgeResponse, GatewayError> {
    let pet_id = req.params.pet_id;
    let pets = ctx.upstream("pets").ok_or_else(GatewayError::internal)?;
    let answer = pets.get(&format!("/v1/pets/{pet_id}")).await?;
    let not_found = |detail: String| {
        GetPetAgeResponse::NotFound(Problem {
            type_: Some(String::from("urn:petstore:pet-age-unknown")),
            title: String::from("Not found"),
            status: 404,
            detail: Some(detail),
        })
    };
    if answer.status() == 404 {
        return Ok(not_found(format!("there is no pet {pet_id}")));
    }
    if !answer.status().is_success() {
        return Err(GatewayError::upstream("the pets service failed"));
    }
    let pet: serde_json::Value = serde_json::from_slice(answer.body()).unwrap_or_default();
    Ok(match pet.get("age").and_then(serde_json::Value::as_i64) {
        Some(years) if years >= 0 => GetPetAgeResponse::Ok(PetAge {
            pet_id,
            years,
            dog_years: years * DOG_YEARS,
        }),
        _ => not_found(format!("the pets service does not say how old pet {pet_id} is")),
    })
}

/// `POST /pets/{petId}/checkups`: the vet's advice from the checkup's figures (the body was checked against the
/// `Checkup` schema before this runs: the weight is positive and at most 150 kg, the temperature in range).
pub async fn checkup(req: RecordCheckupRequest, _ctx: &FunctionContext<'_>) -> RecordCheckupResponse {
    let checkup = req.body;
    let advice = match checkup.temperature_c {
        Some(t) if t >= 39.5 => CheckupResultAdvice::Feverish,
        _ if checkup.weight_kg > 80.0 => CheckupResultAdvice::SeeAVet,
        _ => CheckupResultAdvice::Healthy,
    };
    RecordCheckupResponse::Created(CheckupResult {
        pet_id: req.params.pet_id,
        weight_kg: checkup.weight_kg,
        vaccines: checkup
            .vaccines
            .map(|given| given.iter().map(|vaccine| vaccine.as_str().to_owned()).collect()),
        advice,
    })
}
